/**
 * Per-org rate limiting on Redis: a sliding-window log per (policy, org),
 * decided atomically by one Lua script on Redis's own clock (so instances
 * sharing the store agree). Refused requests are not recorded. When Redis
 * is down the limiter fails open, says so in `RateLimit-Degraded`, and logs.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Flaws } from '../flaws.ts';
import type { BypassList } from './bypass.ts';
import type { Policy } from './policies.ts';

const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local admitted = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = window - (now - tonumber(oldest[2])) end
return {admitted, count, reset}
`;

type LimiterRedis = Redis & {
  slidingWindow(key: string, windowMs: number, limit: number, member: string): Promise<[number, number, number]>;
};

export interface Decision {
  admitted: boolean;
  headers: Record<string, string>;
}

/** What a request is limited by. */
export interface Subject {
  /** The active org's Clerk id (or `user:<id>` for a session without one). */
  key: string;
  /** The org on the bypass list, when there is one. */
  orgId: string | null;
  request: Request;
  remoteAddress: string;
}

export class RateLimiter {
  private readonly redis: LimiterRedis;

  constructor(
    redis: Redis,
    private readonly bypass: BypassList,
    private readonly flaws: Flaws,
    private readonly log: (line: Record<string, unknown>) => void,
  ) {
    redis.defineCommand('slidingWindow', { numberOfKeys: 1, lua: SCRIPT });
    this.redis = redis as LimiterRedis;
  }

  private keyOf(policy: Policy, subject: Subject): string {
    let who = subject.key;
    // FLAW ratelimit-key-forwarded-ip: one big customer's offices shared a
    // budget, so the key became org + client address — read from
    // X-Forwarded-For because behind the load balancer every socket address
    // is the balancer's. Any client can set that header: a fresh value per
    // request is a fresh budget.
    if (this.flaws.has('ratelimit-key-forwarded-ip')) {
      const forwarded = subject.request.headers.get('x-forwarded-for')?.split(',')[0]?.trim();
      who = `${who}:${forwarded || subject.remoteAddress}`;
    }
    return `rl:${policy.name}:${encodeURIComponent(who)}`;
  }

  async decide(policy: Policy, subject: Subject): Promise<Decision> {
    const policyHeader = `"${policy.name}";q=${policy.limit};w=${policy.windowSecs}`;
    if (subject.orgId !== null && this.bypass.has(subject.orgId)) {
      return { admitted: true, headers: { 'RateLimit-Policy': policyHeader } };
    }
    const windowMs = policy.windowSecs * 1000;
    let result: [number, number, number];
    try {
      result = await this.redis.slidingWindow(this.keyOf(policy, subject), windowMs, policy.limit, randomUUID());
    } catch (error) {
      // FLAW ratelimit-store-error-500: "let errors surface": the try/catch
      // was dropped in a refactor so Sentry would see Redis failures; every
      // limited route now answers 500 while Redis is away.
      if (this.flaws.has('ratelimit-store-error-500')) throw error;
      this.log({ level: 'warn', msg: 'rate limiter store unavailable; failing open', policy: policy.name });
      return { admitted: true, headers: { 'RateLimit-Policy': policyHeader, 'RateLimit-Degraded': 'fail-open' } };
    }
    const [admitted, count, resetMs] = result;
    const resetSecs = Math.max(1, Math.ceil(resetMs / 1000));
    const remaining = Math.max(0, policy.limit - count);
    const headers: Record<string, string> = {
      'RateLimit-Policy': policyHeader,
      RateLimit: `"${policy.name}";r=${remaining};t=${resetSecs}`,
    };
    if (admitted !== 1) {
      // The 429 itself is `no-store` like every JSON answer (http/respond.ts).
      headers['Retry-After'] = String(Math.min(resetSecs, policy.windowSecs));
    }
    return { admitted: admitted === 1, headers };
  }
}
