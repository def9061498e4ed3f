/**
 * OAuth connect states on Redis: 256 random bits, stored server-side under a
 * hash of the state (the keyspace never holds a usable state) with the org,
 * user, session, provider, PKCE verifier and return path it was issued for,
 * for OAUTH_STATE_TTL_SECS (10 minutes by default). Redeeming is one GETDEL:
 * a state is spent by its first use, whatever follows, and two concurrent
 * callbacks cannot both read it.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Flaws } from '../flaws.ts';

export interface StateRecord {
  orgId: string;
  userId: string;
  sessionId: string;
  provider: string;
  verifier: string;
  returnTo: string | null;
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

export class StateStore {
  constructor(
    private readonly redis: Redis,
    private readonly ttlSecs: number,
    private readonly flaws: Flaws,
  ) {}

  private key(state: string, orgId: string): string {
    const digest = createHash('sha256').update(state).digest('base64url');
    // FLAW oauth-state-org-only: the key carries the org, and the developer
    // took that for the binding — the callback finds the state under the
    // caller's org and compares nothing else, so a colleague (or anyone in
    // the org who gets the link) completes someone else's flow.
    return this.flaws.has('oauth-state-org-only') ? `oauth:state:${orgId}:${digest}` : `oauth:state:${digest}`;
  }

  async put(state: string, record: StateRecord): Promise<void> {
    // FLAW oauth-state-ttl-ms-as-secs: the TTL is kept in milliseconds for
    // the `expires_at` the UI shows, and the same number went to EX: states
    // live 1000 times longer than configured (a week instead of 10 minutes).
    const ttl = this.flaws.has('oauth-state-ttl-ms-as-secs') ? this.ttlSecs * 1000 : this.ttlSecs;
    await this.redis.set(this.key(state, record.orgId), JSON.stringify(record), 'EX', ttl);
  }

  /** The record of `state`, removed in the same step; null if unknown, expired or spent. */
  async consume(state: string, callerOrgId: string): Promise<StateRecord | null> {
    const text = await this.redis.getdel(this.key(state, callerOrgId));
    return text === null ? null : (JSON.parse(text) as StateRecord);
  }
}
