/**
 * Connecting an org to a provider (route handlers; the org is the session's
 * active org, as `auth().orgId` gives it in a Next.js route handler):
 * - POST /api/integrations/:provider/connect (org:admin): a state bound to
 *   org, user, session and provider, a PKCE verifier, an allow-listed return
 *   path; answers the provider's authorize URL.
 * - GET /api/integrations/:provider/callback: spends the state first, then
 *   requires the same org, user, session and provider, exchanges the code
 *   with the verifier and stores the sealed tokens in that org only. Every
 *   state failure answers the same `invalid_state`.
 * - GET /api/integrations: the active org's connections.
 */
import { desc, sql } from 'drizzle-orm';
import { integrations } from '../db/schema.ts';
import { withTenant } from '../db/tenant.ts';
import type { AppDeps } from '../deps.ts';
import { error, json, redirect } from '../http/respond.ts';
import type { Tenant } from '../tenancy.ts';
import { s256, withQuery, type MockProvider, type RegisteredClient } from './mockProvider.ts';
import type { Sealer } from './seal.ts';
import { newSecret, type StateStore } from './state.ts';

export const PROVIDERS = ['acme-crm', 'acme-books'] as const;
const RETURN_PATHS = ['/settings/integrations'];
const DEFAULT_RETURN = '/settings/integrations';

export interface Provider extends RegisteredClient {
  name: string;
  authorizeUrl: string;
  tokenUrl: string;
  scopes: string;
}

export interface OAuthDeps {
  providers: Record<string, Provider>;
  states: StateStore;
  sealer: Sealer;
  mock: MockProvider;
}

/** The mock providers, registered with fresh client secrets on this instance's URL. */
export function mockProviders(publicUrl: string): Record<string, Provider> {
  return Object.fromEntries(
    PROVIDERS.map((name) => [
      name,
      {
        name,
        clientId: `clerk-trpc-${name}`,
        clientSecret: newSecret(),
        redirectUri: `${publicUrl}/api/integrations/${name}/callback`,
        authorizeUrl: `${publicUrl}/mock-oauth/${name}/authorize`,
        tokenUrl: `${publicUrl}/mock-oauth/${name}/token`,
        scopes: 'read write',
      },
    ]),
  );
}

/** A relative, allow-listed path (not `//host`, not `/\host`, no control characters). */
export function returnPathAllowed(path: string): boolean {
  const relative = path.startsWith('/') && !path.startsWith('//') && !path.startsWith('/\\') && !/[\u0000-\u001f\\]/.test(path);
  const bare = path.split(/[?#]/)[0] ?? '';
  return relative && RETURN_PATHS.includes(bare);
}

export async function connect(request: Request, provider: string, tenant: Tenant, deps: AppDeps, oauth: OAuthDeps): Promise<Response> {
  const p = oauth.providers[provider];
  if (!p) return error(404, 'not_found');
  if (tenant.role !== 'org:admin') return error(403, 'admin_only');
  let body: { returnTo?: unknown } = {};
  const text = await request.text();
  if (text.trim() !== '') {
    try {
      body = JSON.parse(text) as { returnTo?: unknown };
    } catch {
      return error(400, 'invalid_input');
    }
  }
  const returnTo = body.returnTo ?? null;
  if (returnTo !== null && (typeof returnTo !== 'string' || !returnPathAllowed(returnTo))) return error(400, 'return_path_not_allowed');
  const state = newSecret();
  const verifier = newSecret();
  await oauth.states.put(state, {
    orgId: tenant.orgId,
    userId: tenant.user.id,
    sessionId: tenant.sessionId,
    provider: p.name,
    verifier,
    returnTo,
  });
  const authorizeUrl = withQuery(p.authorizeUrl, {
    response_type: 'code',
    client_id: p.clientId,
    redirect_uri: p.redirectUri,
    scope: p.scopes,
    state,
    code_challenge: s256(verifier),
    code_challenge_method: 'S256',
  });
  return json(200, { authorize_url: authorizeUrl, expires_in: deps.config.oauthStateTtlSecs });
}

export async function callback(url: URL, provider: string, tenant: Tenant, deps: AppDeps, oauth: OAuthDeps): Promise<Response> {
  const p = oauth.providers[provider];
  if (!p) return error(404, 'not_found');
  const state = url.searchParams.get('state') ?? '';
  if (state === '' || state.length > 256) return error(400, 'invalid_state');
  const record = await oauth.states.consume(state, tenant.orgId);
  if (!record) return error(400, 'invalid_state');
  const bound =
    record.provider === p.name &&
    record.orgId === tenant.orgId &&
    (deps.flaws.has('oauth-state-org-only') || (record.userId === tenant.user.id && record.sessionId === tenant.sessionId));
  if (!bound) {
    deps.log({ level: 'warn', msg: 'oauth state bound to another provider, org, user or session', provider });
    return error(400, 'invalid_state');
  }
  if (url.searchParams.has('error')) return error(400, 'access_denied');
  const code = url.searchParams.get('code') ?? '';
  if (code === '' || code.length > 512) return error(400, 'missing_code');
  const exchange = await fetch(p.tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: p.redirectUri,
      client_id: p.clientId,
      client_secret: p.clientSecret,
      code_verifier: record.verifier,
    }),
    signal: AbortSignal.timeout(5000),
  });
  if (!exchange.ok) return error(400, 'exchange_failed');
  const tokens = (await exchange.json()) as { access_token: string; refresh_token?: string; scope?: string; account?: string };
  await withTenant(deps.db, { orgId: tenant.orgId, userId: tenant.user.id }, (t) =>
    t.tx
      .insert(integrations)
      .values({
        organizationId: t.orgId,
        provider: p.name,
        externalAccount: tokens.account ?? 'unknown',
        scopes: tokens.scope ?? '',
        accessTokenSealed: oauth.sealer.seal(tokens.access_token),
        refreshTokenSealed: tokens.refresh_token ? oauth.sealer.seal(tokens.refresh_token) : null,
        connectedBy: tenant.user.id,
      })
      .onConflictDoUpdate({
        target: [integrations.organizationId, integrations.provider],
        set: {
          externalAccount: sql`excluded.external_account`,
          scopes: sql`excluded.scopes`,
          accessTokenSealed: sql`excluded.access_token_sealed`,
          refreshTokenSealed: sql`excluded.refresh_token_sealed`,
          connectedBy: sql`excluded.connected_by`,
          createdAt: sql`now()`,
        },
      }),
  );
  const back = new URL(record.returnTo ?? DEFAULT_RETURN, deps.config.publicUrl);
  back.searchParams.set('connected', p.name);
  return redirect(`${back.pathname}${back.search}`);
}

export async function listConnections(tenant: Tenant, deps: AppDeps): Promise<Response> {
  const rows = await withTenant(deps.db, { orgId: tenant.orgId, userId: tenant.user.id }, (t) =>
    t.tx
      .select({
        id: integrations.id,
        provider: integrations.provider,
        externalAccount: integrations.externalAccount,
        scopes: integrations.scopes,
        connectedAt: integrations.createdAt,
      })
      .from(integrations)
      .where(t.where(integrations))
      .orderBy(desc(integrations.createdAt)),
  );
  return json(200, rows);
}
