import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'svix';
import { startTestApp, twoOrgWorld, type TestApp } from './helpers.ts';

describe('POST /api/webhooks/clerk', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('accepts a Svix-signed user.created and answers the id it assigned', async () => {
    const user = t.clerk.user('dora@d.test');
    const first = await t.webhook('user.created', t.clerk.userJson(user));
    assert.equal(first.status, 200);
    assert.match(first.body.id, /^[0-9a-f-]{36}$/);
    // Svix retries: the same event again is the same user.
    const again = await t.webhook('user.updated', t.clerk.userJson(user));
    assert.equal(again.body.id, first.body.id);
  });

  it('refuses a signature made with another secret, a missing signature and a stale timestamp', async () => {
    const user = t.clerk.user('eve@e.test');
    const forged = await t.webhook('user.created', t.clerk.userJson(user), `whsec_${Buffer.from('not the secret').toString('base64')}`);
    assert.equal(forged.status, 400);
    assert.deepEqual(forged.body, { error: 'invalid_signature' });

    const body = JSON.stringify({ type: 'user.created', data: t.clerk.userJson(user), object: 'event' });
    const unsigned = await fetch(`${t.url}/api/webhooks/clerk`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    assert.equal(unsigned.status, 400);

    const old = new Date(Date.now() - 10 * 60_000);
    const secret = (await import('./helpers.ts')).WEBHOOK_SECRET;
    const signature = new Webhook(secret).sign('msg_old', old, body);
    const stale = await fetch(`${t.url}/api/webhooks/clerk`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'svix-id': 'msg_old', 'svix-timestamp': String(Math.floor(old.getTime() / 1000)), 'svix-signature': signature },
      body,
    });
    assert.equal(stale.status, 400);
    // Nothing of eve arrived.
    const token = t.clerk.token(user, null);
    assert.equal((await t.get('/api/me', token)).status, 403);
  });

  it('mirrors orgs and memberships: /api/me lists them with the local ids', async () => {
    const w = await twoOrgWorld(t);
    const res = await t.get('/api/me', t.clerk.token(w.alice, w.a));
    assert.equal(res.status, 200);
    const me = (await res.json()) as any;
    assert.equal(me.user.clerkId, w.alice.id);
    assert.equal(me.user.id, w.ids.get(w.alice.id));
    const byClerk = Object.fromEntries(me.organizations.map((o: any) => [o.clerkId, o]));
    assert.equal(byClerk[w.a.id].id, w.aRef);
    assert.equal(byClerk[w.a.id].role, 'org:admin');
    assert.equal(byClerk[w.b.id].id, w.bRef);
    assert.equal(byClerk[w.b.id].slug, w.b.slug);
    assert.deepEqual(me.activeOrganization, { id: w.aRef, clerkId: w.a.id });
    // bob sees only his org.
    const bobMe = (await (await t.get('/api/me', t.clerk.token(w.bob, w.b))).json()) as any;
    assert.deepEqual(bobMe.organizations.map((o: any) => o.id), [w.bRef]);
  });

  it('organizationMembership.deleted takes access away at once, before the token expires', async () => {
    const w = await twoOrgWorld(t);
    const token = t.clerk.token(w.carol, w.a);
    assert.equal((await t.query('orders.list', { orgId: w.aRef }, token)).status, 200);
    const removed = await t.webhook('organizationMembership.deleted', t.clerk.membershipJson(w.a, w.carol, 'org:member'));
    assert.equal(removed.status, 200);
    assert.equal(removed.body.organizationId, w.aRef);
    const after = await t.query('orders.list', { orgId: w.aRef }, token);
    assert.equal(after.status, 403);
    assert.equal(after.body.error.json.message, 'not_a_member');
    const me = (await (await t.get('/api/me', token)).json()) as any;
    assert.deepEqual(me.organizations, []);
  });

  it('organizationMembership.updated changes the mirrored role; organization.deleted closes the org', async () => {
    const w = await twoOrgWorld(t);
    const updated = await t.webhook('organizationMembership.updated', t.clerk.membershipJson(w.a, w.carol, 'org:admin'));
    assert.equal(updated.status, 200);
    const me = (await (await t.get('/api/me', t.clerk.token(w.carol, w.a))).json()) as any;
    assert.equal(me.organizations[0].role, 'org:admin');

    const deleted = await t.webhook('organization.deleted', { id: w.b.id, object: 'organization', deleted: true });
    assert.equal(deleted.body.id, w.bRef);
    const res = await t.query('orders.list', { orgId: w.bRef }, t.clerk.token(w.bob, w.b));
    assert.equal(res.status, 403);
  });

  it('a membership event before its org and user events still converges', async () => {
    const user = t.clerk.user('finn@f.test');
    const org = t.clerk.org('Early');
    org.members.set(user.id, 'org:admin');
    const r = await t.webhook('organizationMembership.created', t.clerk.membershipJson(org, user, 'org:admin'));
    assert.equal(r.status, 200);
    const orgEvent = await t.webhook('organization.created', t.clerk.orgJson(org));
    assert.equal(orgEvent.body.id, r.body.organizationId);
    const list = await t.query('orders.list', { orgId: r.body.organizationId }, t.clerk.token(user, org));
    assert.equal(list.status, 200);
  });
});
