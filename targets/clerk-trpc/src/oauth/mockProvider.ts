/**
 * Mock OAuth 2.0 providers, served by the app under /mock-oauth/<provider>/
 * as an external provider would be (for tests and the harness):
 * - GET authorize: the registered client and its exact redirect URI, then
 *   "the user consents" and is sent back with a code bound to the client,
 *   the redirect URI and the PKCE challenge (`decision=deny`: access_denied);
 * - POST token: client authentication, exact redirect URI, PKCE S256,
 *   single-use codes that live 60 s.
 */
import { createHash, randomBytes } from 'node:crypto';
import { json, redirect } from '../http/respond.ts';

export interface RegisteredClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

interface Grant {
  provider: string;
  clientId: string;
  redirectUri: string;
  challenge: string | null;
  account: string;
  scope: string;
  expires: number;
}

const CODE_TTL_MS = 60_000;

export function s256(verifier: string): string {
  return createHash('sha256').update(verifier).digest('base64url');
}

export function withQuery(base: string, params: Record<string, string>): string {
  const url = new URL(base);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

export class MockProvider {
  private readonly codes = new Map<string, Grant>();

  constructor(private readonly clients: Record<string, RegisteredClient>) {}

  authorize(provider: string, url: URL): Response {
    const client = this.clients[provider];
    if (!client) return json(404, { error: 'invalid_request', error_description: 'unknown provider' });
    const q = url.searchParams;
    if (q.get('client_id') !== client.clientId) return json(400, { error: 'invalid_request', error_description: 'unknown client_id' });
    if (q.get('redirect_uri') !== client.redirectUri) {
      return json(400, { error: 'invalid_request', error_description: 'redirect_uri is not registered for this client' });
    }
    const state = q.get('state') ?? '';
    if (q.get('response_type') !== 'code') return redirect(withQuery(client.redirectUri, { error: 'unsupported_response_type', state }));
    if (q.get('decision') === 'deny') return redirect(withQuery(client.redirectUri, { error: 'access_denied', state }));
    const challenge = q.get('code_challenge');
    if (challenge !== null && (q.get('code_challenge_method') !== 'S256' || challenge.length !== 43)) {
      return redirect(withQuery(client.redirectUri, { error: 'invalid_request', state }));
    }
    const code = randomBytes(24).toString('base64url');
    this.codes.set(code, {
      provider,
      clientId: client.clientId,
      redirectUri: client.redirectUri,
      challenge,
      account: q.get('account') ?? 'acct-1',
      scope: q.get('scope') ?? '',
      expires: Date.now() + CODE_TTL_MS,
    });
    return redirect(withQuery(client.redirectUri, { code, state }));
  }

  async token(provider: string, request: Request): Promise<Response> {
    const client = this.clients[provider];
    if (!client) return json(404, { error: 'invalid_request' });
    const form = new URLSearchParams(await request.text());
    if (form.get('client_id') !== client.clientId || form.get('client_secret') !== client.clientSecret) {
      return json(401, { error: 'invalid_client' });
    }
    if (form.get('grant_type') !== 'authorization_code') return json(400, { error: 'unsupported_grant_type' });
    const code = form.get('code') ?? '';
    const grant = this.codes.get(code);
    this.codes.delete(code); // single use, whatever follows
    if (!grant) return json(400, { error: 'invalid_grant' });
    const verifier = form.get('code_verifier');
    const pkceOk = grant.challenge === null ? verifier === null : verifier !== null && s256(verifier) === grant.challenge;
    if (
      grant.provider !== provider ||
      grant.clientId !== client.clientId ||
      form.get('redirect_uri') !== grant.redirectUri ||
      grant.expires <= Date.now() ||
      !pkceOk
    ) {
      return json(400, { error: 'invalid_grant' });
    }
    return json(200, {
      access_token: `at_${randomBytes(24).toString('base64url')}`,
      refresh_token: `rt_${randomBytes(24).toString('base64url')}`,
      token_type: 'bearer',
      expires_in: 3600,
      scope: grant.scope,
      account: grant.account,
    });
  }
}
