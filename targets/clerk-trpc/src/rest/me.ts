/**
 * GET /api/me: the signed-in user as the app knows them, with their orgs —
 * the app's ids beside Clerk's (the org switcher's data, and how a client
 * learns the app's org ids).
 */
import { and, eq, isNull } from 'drizzle-orm';
import type { SignedIn } from '../auth/clerk.ts';
import { memberships, organizations } from '../db/schema.ts';
import { withUser } from '../db/tenant.ts';
import type { AppDeps } from '../deps.ts';
import { error, json } from '../http/respond.ts';
import { localUser } from '../tenancy.ts';

export async function me(auth: SignedIn, deps: AppDeps): Promise<Response> {
  const user = await localUser(deps.db, auth);
  if (!user) return error(403, 'user_not_provisioned');
  const orgs = await withUser(deps.db, user.id, (tx) =>
    tx
      .select({ id: organizations.id, clerkId: organizations.clerkId, slug: organizations.slug, name: organizations.name, role: memberships.role })
      .from(memberships)
      .innerJoin(organizations, eq(organizations.id, memberships.organizationId))
      .where(and(eq(memberships.userId, user.id), isNull(organizations.deletedAt)))
      .orderBy(organizations.name),
  );
  const active = orgs.find((o) => o.clerkId === auth.orgId) ?? null;
  return json(200, {
    user: { id: user.id, clerkId: user.clerkId, email: user.email },
    activeOrganization: active ? { id: active.id, clerkId: active.clerkId } : null,
    organizations: orgs,
  });
}
