/**
 * Auth at the edge, as clerkMiddleware does it: `authenticateRequest` on
 * every request (token from `Authorization: Bearer` or the `__session`
 * cookie), the JWKS fetched from the instance's Backend API
 * (`CLERK_API_URL/v1/jwks`), the issuer pinned to the instance's Frontend
 * API and `azp` checked against the authorized parties. What comes out is a
 * SignedIn (Clerk ids, the active org from the v2 claims) or nothing.
 */
import { createClerkClient, type ClerkClient } from '@clerk/backend';
import type { Config } from '../config.ts';
import type { Flaws } from '../flaws.ts';

export interface SignedIn {
  /** Clerk user id (`sub`). */
  userId: string;
  /** Clerk session id (`sid`): session tokens always carry one. */
  sessionId: string;
  /** Active org (Clerk id), or null for the personal account. */
  orgId: string | null;
  orgSlug: string | null;
  /** `org:admin`, `org:member`, … */
  orgRole: string | null;
}

/** Whether a compact JWS header lists `crit` extensions (none are understood here, RFC 7515 §4.1.11). */
function hasCriticalHeader(token: string): boolean {
  const header = token.split('.')[0] ?? '';
  try {
    const parsed = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as Record<string, unknown>;
    return parsed !== null && typeof parsed === 'object' && 'crit' in parsed;
  } catch {
    return false; // not a JWT: the verifier refuses it anyway
  }
}

/**
 * The session token of a request: the Bearer header or the `__session`
 * cookie. When both are there they must agree; Clerk would silently prefer
 * the header, and one credential quietly overriding another is how a
 * planted cookie or a stale header ends up deciding who the caller is.
 */
function sessionToken(request: Request): { token: string | null; conflict: boolean } {
  const header = request.headers.get('authorization');
  const fromHeader = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
  const cookie = request.headers.get('cookie') ?? '';
  const match = /(?:^|;\s*)__session=([^;]*)/.exec(cookie);
  const fromCookie = match ? match[1]!.trim() : null;
  const conflict = fromHeader !== null && fromCookie !== null && fromCookie !== '' && fromCookie !== fromHeader;
  return { token: fromHeader || fromCookie || null, conflict };
}

export interface Auth {
  clerk: ClerkClient;
  authenticate(request: Request): Promise<SignedIn | null>;
}

export function createAuth(config: Config, flaws: Flaws): Auth {
  const clerk = createClerkClient({
    secretKey: config.clerk.secretKey,
    publishableKey: config.clerk.publishableKey,
    apiUrl: config.clerk.apiUrl,
  });
  return {
    clerk,
    async authenticate(request) {
      const { token, conflict } = sessionToken(request);
      if (!token || conflict || hasCriticalHeader(token)) return null;
      const state = await clerk.authenticateRequest(request, {
        // FLAW no-authorized-parties: left out while the preview deployments
        // had a new origin per branch ("it broke every preview"), and never
        // put back; Clerk then accepts a token minted for any app of the instance.
        authorizedParties: flaws.has('no-authorized-parties') ? undefined : config.clerk.authorizedParties,
        // FLAW issuer-not-pinned: clerkMiddleware's defaults do not compare
        // `iss`; the team took the JWKS lookup for an issuer check.
        issuer: flaws.has('issuer-not-pinned') ? undefined : config.clerk.issuer,
      });
      if (!state.isAuthenticated) return null;
      // FLAW pending-sessions-accepted: the onboarding page (the "choose an
      // organization" session task) needed pending sessions, so the option
      // was flipped for every request instead of that page.
      const auth = state.toAuth({ treatPendingAsSignedOut: !flaws.has('pending-sessions-accepted') });
      if (!auth || auth.tokenType !== 'session_token' || !auth.userId) return null;
      // JWT-template tokens verify with the same key but carry no session.
      if (typeof auth.sessionId !== 'string' || auth.sessionId === '') return null;
      return {
        userId: auth.userId,
        sessionId: auth.sessionId,
        orgId: typeof auth.orgId === 'string' && auth.orgId !== '' ? auth.orgId : null,
        orgSlug: auth.orgSlug ?? null,
        orgRole: auth.orgRole ?? null,
      };
    },
  };
}
