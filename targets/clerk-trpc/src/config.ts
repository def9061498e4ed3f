/**
 * The environment contract (README.md lists it). Every problem names the
 * variable; secrets are never echoed.
 */
import { Flaws } from './flaws.ts';
import { policies, type Policy } from './ratelimit/policies.ts';

export interface Config {
  port: number;
  /** Where the app says it lives (OAuth redirect URIs); default http://127.0.0.1:PORT. */
  publicUrl: string;
  /** Owner/admin connection: migrations and role setup only. */
  databaseUrl: string;
  /** The app role's connection: every request. */
  appDatabaseUrl: string;
  redisUrl: string;
  clerk: {
    apiUrl: string;
    secretKey: string;
    publishableKey: string;
    /** The instance's Frontend API URL, from the publishable key: the only accepted `iss`. */
    issuer: string;
    authorizedParties: string[];
    webhookSigningSecret: string;
  };
  /** Per-org limits by policy name (src/ratelimit/policies.ts; `RATE_LIMITS` overrides). */
  rateLimits: Record<string, Policy>;
  rateLimitBypassFile: string | null;
  oauthStateTtlSecs: number;
  /** Base64 of 32 bytes sealing provider tokens at rest; random per process when unset. */
  tokenSealingKey: string | null;
  flaws: Flaws;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

function required(env: Env, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`${name} is required`);
  return value;
}

function url(env: Env, name: string, schemes: string[]): string {
  const value = required(env, name);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a URL`);
  }
  if (!schemes.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must use ${schemes.join(' or ')}`);
  }
  return value;
}

/**
 * The Frontend API host encoded in a Clerk publishable key
 * (`pk_live_` / `pk_test_` + base64 of `host$`).
 */
export function frontendApiOf(publishableKey: string): string | null {
  const match = /^pk_(live|test)_([A-Za-z0-9+/=_-]+)$/.exec(publishableKey);
  if (!match) return null;
  const decoded = Buffer.from(match[2]!, 'base64').toString('utf8');
  if (!decoded.endsWith('$') || decoded.length < 2) return null;
  return decoded.slice(0, -1);
}

/** The publishable key of an instance whose Frontend API is `host`. */
export function publishableKeyFor(host: string, kind: 'live' | 'test' = 'live'): string {
  return `pk_${kind}_${Buffer.from(`${host}$`).toString('base64')}`;
}

export function loadConfig(env: Env = process.env): Config {
  // First: a mistyped flaw must never start the clean app (or any app).
  let flaws: Flaws;
  try {
    flaws = Flaws.parse(env.TARGET_FLAW);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const port = Number(env.PORT ?? '3000');
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('PORT must be a port number');
  const secretKey = required(env, 'CLERK_SECRET_KEY');
  if (!/^sk_(live|test)_/.test(secretKey)) throw new ConfigError('CLERK_SECRET_KEY must start with sk_live_ or sk_test_');
  const publishableKey = required(env, 'CLERK_PUBLISHABLE_KEY');
  const frontendApi = frontendApiOf(publishableKey);
  if (!frontendApi) throw new ConfigError('CLERK_PUBLISHABLE_KEY is not a Clerk publishable key (pk_live_… or pk_test_…)');
  const webhookSigningSecret = required(env, 'CLERK_WEBHOOK_SIGNING_SECRET');
  if (!webhookSigningSecret.startsWith('whsec_')) throw new ConfigError('CLERK_WEBHOOK_SIGNING_SECRET must start with whsec_');
  const authorizedParties = (env.CLERK_AUTHORIZED_PARTIES ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (authorizedParties.length === 0) {
    throw new ConfigError('CLERK_AUTHORIZED_PARTIES is required: the origins (azp) allowed to use session tokens');
  }
  const ttl = Number(env.OAUTH_STATE_TTL_SECS ?? '600');
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > 600) {
    throw new ConfigError('OAUTH_STATE_TTL_SECS must be a whole number of seconds in 1..600');
  }
  let rateLimits: Record<string, Policy>;
  try {
    rateLimits = policies(env.RATE_LIMITS);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return {
    port,
    publicUrl: (env.PUBLIC_URL?.trim() || `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    appDatabaseUrl: url(env, 'APP_DATABASE_URL', ['postgres:', 'postgresql:']),
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:']),
    clerk: {
      apiUrl: url(env, 'CLERK_API_URL', ['http:', 'https:']).replace(/\/$/, ''),
      secretKey,
      publishableKey,
      issuer: `https://${frontendApi}`,
      authorizedParties,
      webhookSigningSecret,
    },
    rateLimits,
    rateLimitBypassFile: env.RATE_LIMIT_BYPASS_FILE?.trim() || null,
    oauthStateTtlSecs: ttl,
    tokenSealingKey: env.TOKEN_SEALING_KEY?.trim() || null,
    flaws,
  };
}
