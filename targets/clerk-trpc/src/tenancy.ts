/**
 * Who is asking, in which org: the one place that turns a verified Clerk
 * session into the app's own user and org ids. The rule: the org a request
 * names (by the app's org id) must be the session's active org, and the user
 * must be a member of it in our mirror of Clerk's memberships — so a removed
 * member loses access at the webhook, not at the token's expiry. Foreign and
 * unknown orgs are refused alike.
 */
import { and, eq, isNull } from 'drizzle-orm';
import type { SignedIn } from './auth/clerk.ts';
import type { Db } from './db/client.ts';
import { memberships, organizations, users } from './db/schema.ts';
import { withTenant } from './db/tenant.ts';
import type { Flaws } from './flaws.ts';

export interface LocalUser {
  id: string;
  clerkId: string;
  email: string | null;
}

export interface Tenant {
  /** The app's org id. */
  orgId: string;
  clerkOrgId: string;
  user: LocalUser;
  sessionId: string;
  /** The role in this org, from the verified session (`org:admin`, `org:member`, …). */
  role: string;
}

export type TenancyRefusal = 'user_not_provisioned' | 'no_active_org' | 'org_mismatch' | 'not_a_member';

export async function localUser(db: Db, auth: SignedIn): Promise<LocalUser | null> {
  const [user] = await db
    .select({ id: users.id, clerkId: users.clerkId, email: users.email })
    .from(users)
    .where(and(eq(users.clerkId, auth.userId), isNull(users.deletedAt)));
  return user ?? null;
}

async function orgBy(db: Db, column: 'id' | 'clerkId', value: string) {
  const [org] = await db
    .select({ id: organizations.id, clerkId: organizations.clerkId })
    .from(organizations)
    .where(and(eq(organizations[column], value), isNull(organizations.deletedAt)));
  return org ?? null;
}

/** The tenant for `requestedOrgId` (an app org id) or why not. `null` asks for the active org. */
export async function resolveTenant(
  db: Db,
  flaws: Flaws,
  auth: SignedIn,
  requestedOrgId: string | null,
): Promise<Tenant | TenancyRefusal> {
  const user = await localUser(db, auth);
  if (!user) return 'user_not_provisioned';

  // FLAW org-input-unchecked: the orgId comes from the /o/[orgId]/… URL and
  // the org switcher only ever links to the user's own orgs, so the
  // procedure trusted it: any existing org id is served, whatever the
  // session's active org and whether or not the caller is a member.
  if (flaws.has('org-input-unchecked') && requestedOrgId !== null) {
    const org = await orgBy(db, 'id', requestedOrgId);
    if (!org) return 'org_mismatch';
    return { orgId: org.id, clerkOrgId: org.clerkId, user, sessionId: auth.sessionId, role: auth.orgRole ?? 'org:member' };
  }

  let org: { id: string; clerkId: string } | null;
  // FLAW membership-not-active-org: users keep tabs open on several orgs and
  // comparing with the session's active org "broke the other tabs", so the
  // check became "is a member of the org in the input". The role still comes
  // from the session — the active org's role, applied to another org.
  if (flaws.has('membership-not-active-org') && requestedOrgId !== null) {
    org = await orgBy(db, 'id', requestedOrgId);
  } else {
    if (!auth.orgId) return 'no_active_org';
    org = await orgBy(db, 'clerkId', auth.orgId);
    if (!org || (requestedOrgId !== null && requestedOrgId !== org.id)) return 'org_mismatch';
  }
  if (!org) return 'org_mismatch';
  const orgId = org.id;

  const member = await withTenant(db, { orgId, userId: user.id }, async (t) => {
    const [row] = await t.tx
      .select({ role: memberships.role })
      .from(memberships)
      .where(t.where(memberships, eq(memberships.userId, user.id)));
    return row ?? null;
  });
  if (!member) return 'not_a_member';
  return { orgId, clerkOrgId: org.clerkId, user, sessionId: auth.sessionId, role: auth.orgRole ?? member.role };
}
