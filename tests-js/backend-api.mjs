// Drives a tenantry reference server's Backend API with the real
// @clerk/backend client: users, organizations, memberships, sessions.
// Input: env TENANTRY_API_URL (server base URL) and TENANTRY_SECRET_KEY.
// Output: one JSON line with what the client saw (or {error} on failure).
import { createClerkClient } from '@clerk/backend';

const clerk = createClerkClient({
  secretKey: process.env.TENANTRY_SECRET_KEY,
  apiUrl: process.env.TENANTRY_API_URL,
});
const out = {};
try {
  const owner = await clerk.users.createUser({
    emailAddress: ['owner@sdk.example'],
    password: 'correct horse battery staple',
    firstName: 'Olive',
    publicMetadata: { plan: 'pro' },
  });
  const member = await clerk.users.createUser({
    emailAddress: ['member@sdk.example'],
    password: 'correct horse battery staple',
  });
  out.owner = {
    id: owner.id,
    email: owner.primaryEmailAddress?.emailAddress ?? null,
    firstName: owner.firstName,
    plan: owner.publicMetadata.plan,
    passwordEnabled: owner.passwordEnabled,
  };
  const fetched = await clerk.users.getUser(owner.id);
  out.fetchedId = fetched.id;
  const list = await clerk.users.getUserList({ emailAddress: ['member@sdk.example'] });
  out.userList = { ids: list.data.map((u) => u.id), totalCount: list.totalCount, memberId: member.id };

  const org = await clerk.organizations.createOrganization({ name: 'SDK Org', createdBy: owner.id });
  out.org = { id: org.id, slug: org.slug, name: org.name, createdBy: org.createdBy };
  const bySlug = await clerk.organizations.getOrganization({ slug: org.slug });
  out.orgBySlug = bySlug.id;

  const membership = await clerk.organizations.createOrganizationMembership({
    organizationId: org.id,
    userId: member.id,
    role: 'org:member',
  });
  out.membership = {
    role: membership.role,
    orgId: membership.organization.id,
    userId: membership.publicUserData?.userId ?? null,
    identifier: membership.publicUserData?.identifier ?? null,
  };
  const updated = await clerk.organizations.updateOrganizationMembership({
    organizationId: org.id,
    userId: member.id,
    role: 'org:admin',
  });
  out.updatedRole = updated.role;
  const memberships = await clerk.organizations.getOrganizationMembershipList({ organizationId: org.id });
  out.memberships = { totalCount: memberships.totalCount, roles: memberships.data.map((m) => m.role).sort() };
  await clerk.organizations.deleteOrganizationMembership({ organizationId: org.id, userId: member.id });
  const after = await clerk.organizations.getOrganizationMembershipList({ organizationId: org.id });
  out.afterDelete = after.totalCount;

  try {
    await clerk.organizations.createOrganizationMembership({
      organizationId: org.id,
      userId: 'user_doesnotexist',
      role: 'org:member',
    });
    out.missingUser = 'accepted';
  } catch (e) {
    out.missingUser = { status: e.status, code: e.errors?.[0]?.code ?? null };
  }
  try {
    await clerk.users.getUser('user_doesnotexist');
    out.missingGet = 'found';
  } catch (e) {
    out.missingGet = { status: e.status, code: e.errors?.[0]?.code ?? null };
  }
} catch (e) {
  out.error = String(e?.message ?? e);
  out.errors = e?.errors ?? null;
  out.status = e?.status ?? null;
}
console.log(JSON.stringify(out));
