/**
 * The app: the route table (each route with its auth class and rate-limit
 * policy), the edge that runs before every handler (Clerk's
 * authenticateRequest, then the per-org limiter), and startup (migrations as
 * the owner, then the app role's pool, Redis, the HTTP server).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchRequestHandler } from '@trpc/server/adapters/fetch';
import { sql } from 'drizzle-orm';
import { createAuth, type SignedIn } from './auth/clerk.ts';
import { OrgCache } from './cache.ts';
import type { Config } from './config.ts';
import { connect } from './db/client.ts';
import { migrate } from './db/migrate.ts';
import type { AppDeps, Log } from './deps.ts';
import { BodyTooLarge, sendResponse, toRequest } from './http/node.ts';
import { error, json } from './http/respond.ts';
import { callback, connect as connectProvider, listConnections, mockProviders, type OAuthDeps } from './oauth/connect.ts';
import { MockProvider } from './oauth/mockProvider.ts';
import { Sealer } from './oauth/seal.ts';
import { StateStore } from './oauth/state.ts';
import { BypassList } from './ratelimit/bypass.ts';
import { RateLimiter } from './ratelimit/limiter.ts';
import { PROCEDURE_POLICIES, type Policy } from './ratelimit/policies.ts';
import { connectRedis } from './redis.ts';
import { me } from './rest/me.ts';
import { ordersCsv } from './rest/ordersCsv.ts';
import { resolveTenant, type Tenant, type TenancyRefusal } from './tenancy.ts';
import { appRouter } from './trpc/router.ts';
import { clerkWebhook } from './webhooks/clerk.ts';

/**
 * - `public`: no session (health, the mock provider);
 * - `webhook`: no session, a Svix signature instead;
 * - `signed-in`: a verified session, any org or none;
 * - `org`: a verified session acting in an org (resolveTenant);
 * - `trpc`: the session goes into the tRPC context; procedures decide.
 */
type AuthClass = 'public' | 'webhook' | 'signed-in' | 'org' | 'trpc';

interface Call {
  request: Request;
  url: URL;
  params: Record<string, string>;
  auth: SignedIn | null;
  tenant: Tenant | null;
}

interface Route {
  method: string;
  path: string;
  auth: AuthClass;
  /** The budget it spends (tRPC: per procedure, PROCEDURE_POLICIES, default `api`). */
  policy?: string;
  handle(call: Call): Promise<Response> | Response;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function routes(deps: AppDeps, oauth: OAuthDeps): Route[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      auth: 'public',
      handle: async () => {
        await deps.db.execute(sql`SELECT 1`);
        return json(200, { ok: true });
      },
    },
    {
      method: 'POST',
      path: '/api/webhooks/clerk',
      auth: 'webhook',
      handle: ({ request }) =>
        clerkWebhook(request, { db: deps.db, flaws: deps.flaws, signingSecret: deps.config.clerk.webhookSigningSecret, log: deps.log }),
    },
    { method: 'GET', path: '/api/me', auth: 'signed-in', handle: ({ auth }) => me(auth!, deps) },
    { method: 'GET', path: '/api/orgs/:orgId/orders.csv', auth: 'org', policy: 'export', handle: ({ tenant }) => ordersCsv(tenant!, deps) },
    { method: 'GET', path: '/api/integrations', auth: 'org', handle: ({ tenant }) => listConnections(tenant!, deps) },
    {
      method: 'POST',
      path: '/api/integrations/:provider/connect',
      auth: 'org',
      handle: ({ request, params, tenant }) => storeBound(() => connectProvider(request, params.provider!, tenant!, deps, oauth)),
    },
    {
      method: 'GET',
      path: '/api/integrations/:provider/callback',
      auth: 'org',
      handle: ({ url, params, tenant }) => storeBound(() => callback(url, params.provider!, tenant!, deps, oauth)),
    },
    { method: 'GET', path: '/mock-oauth/:provider/authorize', auth: 'public', handle: ({ url, params }) => oauth.mock.authorize(params.provider!, url) },
    { method: 'POST', path: '/mock-oauth/:provider/token', auth: 'public', handle: ({ request, params }) => oauth.mock.token(params.provider!, request) },
    ...['GET', 'POST'].map(
      (method): Route => ({
        method,
        path: '/api/trpc/*',
        auth: 'trpc',
        handle: ({ request, auth }) =>
          fetchRequestHandler({
            endpoint: '/api/trpc',
            req: request,
            router: appRouter,
            createContext: () => ({ deps, auth }),
            onError: ({ error: e, path }) => {
              if (e.code === 'INTERNAL_SERVER_ERROR') deps.log({ level: 'error', msg: 'trpc procedure failed', path, error: String(e.cause ?? e.message) });
            },
          }),
      }),
    ),
  ];
}

/** OAuth states live in Redis: without it, connecting is unavailable (503), not broken (500). */
async function storeBound(fn: () => Promise<Response>): Promise<Response> {
  try {
    return await fn();
  } catch (e) {
    const name = (e as Error).name ?? '';
    const message = (e as Error).message ?? '';
    if (/Redis|MaxRetries/i.test(name) || /enableOfflineQueue|Connection is closed|Command timed out/.test(message)) {
      return error(503, 'unavailable', { 'retry-after': '5' });
    }
    throw e;
  }
}

function match(route: Route, method: string, pathname: string): Record<string, string> | null {
  if (route.method !== method) return null;
  if (route.path.endsWith('/*')) return pathname.startsWith(route.path.slice(0, -1)) ? {} : null;
  const want = route.path.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith(':')) {
      // `orders.csv` style segments: `:orgId` matches up to a literal suffix.
      params[w.slice(1)] = decodeURIComponent(g);
    } else if (w !== g) {
      return null;
    }
  }
  return params;
}

const REFUSAL_STATUS: Record<TenancyRefusal, number> = {
  user_not_provisioned: 403,
  no_active_org: 403,
  org_mismatch: 403,
  not_a_member: 403,
};

function trpcPolicies(pathname: string): string[] {
  const procedures = pathname.slice('/api/trpc/'.length).split(',');
  return [...new Set(procedures.map((p) => PROCEDURE_POLICIES[p] ?? 'api'))];
}

export interface RunningApp {
  url: string;
  server: Server;
  deps: AppDeps;
  close(): Promise<void>;
}

export function jsonLog(line: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...line })}\n`);
}

export async function startApp(config: Config, log: Log = jsonLog): Promise<RunningApp> {
  const { flaws } = config;
  const applied = await migrate(config.databaseUrl, config.appDatabaseUrl, flaws);
  if (applied.length > 0) log({ level: 'info', msg: 'migrations applied', applied });

  const database = connect(config.appDatabaseUrl);
  const redis = connectRedis(config.redisUrl);
  redis.on('error', () => {}); // reported by the callers that needed it
  try {
    await redis.connect();
  } catch {
    log({ level: 'warn', msg: 'redis unavailable at start; limits fail open and caches miss until it is back' });
  }
  const auth = createAuth(config, flaws);
  const bypass = new BypassList(config.rateLimitBypassFile, flaws, log);
  const limiter = new RateLimiter(redis, bypass, flaws, log);
  // Built once the server listens: the OAuth redirect URIs need the real port.
  let deps: AppDeps | null = null;
  let table: Route[] = [];

  async function serve(request: Request, remoteAddress: string): Promise<Response> {
    if (!deps) return error(503, 'starting');
    const url = new URL(request.url);
    let route: Route | undefined;
    let params: Record<string, string> = {};
    for (const r of table) {
      const p = match(r, request.method, url.pathname);
      if (p) {
        route = r;
        params = p;
        break;
      }
    }
    if (!route) {
      const known = table.some((r) => match({ ...r, method: request.method }, request.method, url.pathname));
      return known ? error(405, 'method_not_allowed') : error(404, 'not_found');
    }
    const call: Call = { request, url, params, auth: null, tenant: null };
    if (route.auth !== 'public' && route.auth !== 'webhook') {
      call.auth = await auth.authenticate(request);
      if (!call.auth && route.auth !== 'trpc') return error(401, 'unauthenticated');
    }
    if (route.auth === 'org') {
      const orgId = params.orgId ?? null;
      if (orgId !== null && !UUID.test(orgId)) return error(404, 'not_found');
      const tenant = await resolveTenant(database.db, flaws, call.auth!, orgId);
      if (typeof tenant === 'string') return error(REFUSAL_STATUS[tenant], tenant);
      call.tenant = tenant;
    }
    const limits: Policy[] = [];
    if (call.auth) {
      const names = route.auth === 'trpc' ? trpcPolicies(url.pathname) : route.policy ? [route.policy] : [];
      for (const name of names) limits.push(config.rateLimits[name]!);
    }
    const headers: Record<string, string> = {};
    for (const policy of limits) {
      const decision = await limiter.decide(policy, {
        key: call.auth!.orgId ?? `user:${call.auth!.userId}`,
        orgId: call.auth!.orgId,
        request,
        remoteAddress,
      });
      Object.assign(headers, decision.headers);
      if (!decision.admitted) return error(429, 'rate_limited', headers);
    }
    const response = await route.handle(call);
    for (const [name, value] of Object.entries(headers)) response.headers.set(name, value);
    return response;
  }

  let base = '';
  const server = createServer(async (req, res) => {
    let response: Response;
    try {
      const request = await toRequest(req, base);
      response = await serve(request, req.socket.remoteAddress ?? '');
    } catch (e) {
      if (e instanceof BodyTooLarge) {
        response = error(413, 'payload_too_large');
      } else {
        log({ level: 'error', msg: 'request failed', method: req.method, path: req.url?.split('?')[0], error: String(e) });
        response = error(500, 'internal_error');
      }
    }
    try {
      await sendResponse(res, response);
    } catch {
      res.destroy();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  const publicUrl = config.port === 0 ? base : config.publicUrl;
  deps = { config: { ...config, publicUrl }, flaws, db: database.db, redis, clerk: auth.clerk, cache: new OrgCache(redis), log };
  const providers = mockProviders(publicUrl);
  const oauth: OAuthDeps = {
    providers,
    states: new StateStore(redis, config.oauthStateTtlSecs, flaws),
    sealer: new Sealer(config.tokenSealingKey),
    mock: new MockProvider(providers),
  };
  table = routes(deps, oauth);
  const running = deps;
  return {
    url: base,
    server,
    deps: running,
    async close() {
      bypass.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      redis.disconnect();
      await database.close();
    },
  };
}
