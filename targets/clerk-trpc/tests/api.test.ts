import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, twoOrgWorld, type TestApp } from './helpers.ts';

describe('API round trips', () => {
  let t: TestApp;
  let w: Awaited<ReturnType<typeof twoOrgWorld>>;
  before(async () => {
    t = await startTestApp({ env: { RATE_LIMITS: 'search=3/60' } });
    w = await twoOrgWorld(t);
  });
  after(() => t.close());

  const aliceA = () => t.clerk.token(w.alice, w.a);
  const bobB = () => t.clerk.token(w.bob, w.b);

  it('creates, reads, lists, updates and deletes an order of the active org', async () => {
    const created = await t.mutate(
      'orders.create',
      { orgId: w.aRef, customer: 'Canary Ltd', notes: 'n1', lines: [{ description: 'bolts', quantity: 3, unitCents: 250 }] },
      aliceA(),
    );
    assert.equal(created.status, 200);
    const order = created.body as any;
    assert.equal(order.createdByEmail, 'alice@a.test');
    assert.ok(t.clerk.seen.includes(`GET /v1/users/${w.alice.id}`), 'the creator came from the Backend API');
    const read = await t.query('orders.byId', { orgId: w.aRef, id: order.id }, aliceA());
    assert.equal(read.body.lines[0].description, 'bolts');
    assert.ok(read.body.createdAt instanceof Date, 'superjson round trip');
    const list = await t.query('orders.list', { orgId: w.aRef }, aliceA());
    assert.deepEqual(list.body.map((o: any) => o.id), [order.id]);
    const updated = await t.mutate('orders.update', { orgId: w.aRef, id: order.id, status: 'paid' }, aliceA());
    assert.equal(updated.body.status, 'paid');
    const carol = t.clerk.token(w.carol, w.a);
    const refused = await t.mutate('orders.delete', { orgId: w.aRef, id: order.id }, carol);
    assert.equal(refused.status, 403, 'deleting needs org:admin');
    const deleted = await t.mutate('orders.delete', { orgId: w.aRef, id: order.id }, aliceA());
    assert.equal(deleted.body.deleted, true);
    assert.equal((await t.query('orders.byId', { orgId: w.aRef, id: order.id }, aliceA())).status, 404);
  });

  it('another org’s id answers exactly like a missing one', async () => {
    const a = (await t.mutate('orders.create', { orgId: w.aRef, customer: 'A secret' }, aliceA())).body as any;
    const foreign = await t.query('orders.byId', { orgId: w.bRef, id: a.id }, bobB());
    const missing = await t.query('orders.byId', { orgId: w.bRef, id: '00000000-0000-4000-8000-000000000000' }, bobB());
    assert.equal(foreign.status, 404);
    assert.deepEqual(foreign.body, missing.body);
    assert.ok(!JSON.stringify(foreign.body).includes('A secret'));
    assert.ok(!JSON.stringify(foreign.body).includes('stack'));
    for (const path of ['lines.list', 'notes.list']) {
      assert.equal((await t.query(path, { orgId: w.bRef, orderId: a.id }, bobB())).status, 404, path);
    }
    assert.equal((await t.mutate('lines.create', { orgId: w.bRef, orderId: a.id, description: 'x', quantity: 1, unitCents: 1 }, bobB())).status, 404);
    assert.equal((await t.mutate('orders.update', { orgId: w.bRef, id: a.id, customer: 'mine now' }, bobB())).status, 404);
    const search = await t.query('orders.search', { orgId: w.bRef, q: 'A secret' }, bobB());
    assert.deepEqual(search.body, []);
  });

  it('refuses another org’s id in the input, a session without an active org, and no session', async () => {
    const forged = await t.query('orders.list', { orgId: w.aRef }, bobB());
    assert.equal(forged.status, 403);
    assert.equal(forged.body.error.json.message, 'org_mismatch');
    // alice is a member of both, but B is active: A's id is refused too.
    const switched = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.b));
    assert.equal(switched.status, 403);
    const personal = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, null));
    assert.equal(personal.status, 403);
    assert.equal(personal.body.error.json.message, 'no_active_org');
    assert.equal((await t.query('orders.list', { orgId: w.aRef }, null)).status, 401);
    assert.equal((await t.get(`/api/orgs/${w.aRef}/orders.csv`, null)).status, 401);
    assert.equal((await t.get(`/api/orgs/${w.aRef}/orders.csv`, bobB())).status, 403);
    assert.equal((await t.query('orders.list', { orgId: 'not-a-uuid' }, aliceA())).status, 400);
  });

  it('refuses tokens Clerk signed for another app, issuer or purpose', async () => {
    const cases: Record<string, string> = {
      'foreign azp': t.clerk.token(w.alice, w.a, { azp: 'https://evil.test' }),
      'no azp': t.clerk.token(w.alice, w.a, { azp: undefined }),
      'foreign iss': t.clerk.token(w.alice, w.a, { iss: 'https://clerk.evil.test' }),
      'no sid (template token)': t.clerk.token(w.alice, w.a, { sid: undefined }),
      'pending session': t.clerk.token(w.alice, w.a, { sts: 'pending' }),
      expired: t.clerk.token(w.alice, w.a, { exp: Math.floor(Date.now() / 1000) - 60 }),
      'unknown crit': t.clerk.token(w.alice, w.a, {}, { crit: ['exp'] }),
      tampered: aliceA().replace(/\.([^.]+)\./, (_m, p: string) => `.${p.slice(0, -2)}AA.`),
    };
    for (const [name, token] of Object.entries(cases)) {
      assert.equal((await t.query('orders.list', { orgId: w.aRef }, token)).status, 401, name);
    }
  });

  it('takes the token from the __session cookie too, and refuses a cookie that disagrees with the header', async () => {
    const token = aliceA();
    const iat = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).iat;
    const cookie = await t.get('/api/me', null, { cookie: `__session=${token}; __client_uat=${iat}` });
    assert.equal(cookie.status, 200);
    const conflict = await t.get('/api/me', token, { cookie: `__session=${t.clerk.token(w.bob, w.b)}; __client_uat=${iat}` });
    assert.equal(conflict.status, 401);
  });

  it('personal tasks are their owner’s only, even within the org', async () => {
    const task = (await t.mutate('tasks.create', { orgId: w.aRef, title: 'alice private' }, aliceA())).body as any;
    const carol = t.clerk.token(w.carol, w.a);
    assert.deepEqual((await t.query('tasks.list', { orgId: w.aRef }, carol)).body, []);
    assert.equal((await t.query('tasks.byId', { orgId: w.aRef, id: task.id }, carol)).status, 404);
    assert.equal((await t.mutate('tasks.update', { orgId: w.aRef, id: task.id, done: true }, carol)).status, 404);
    assert.equal((await t.mutate('tasks.delete', { orgId: w.aRef, id: task.id }, carol)).status, 404);
    const mine = await t.query('tasks.list', { orgId: w.aRef }, aliceA());
    assert.deepEqual(mine.body.map((x: any) => x.title), ['alice private']);
  });

  it('the dashboard is cached per org and names the org from Clerk', async () => {
    await t.mutate('orders.create', { orgId: w.bRef, customer: 'B only' }, bobB());
    const b = await t.query('dashboard.stats', { orgId: w.bRef }, t.clerk.token(w.alice, w.b));
    assert.equal(b.body.organization.name, 'Bolt');
    assert.ok(t.clerk.seen.includes(`GET /v1/organizations/${w.b.id}`));
    const a = await t.query('dashboard.stats', { orgId: w.aRef }, aliceA());
    assert.equal(a.body.organization.name, 'Acme');
    assert.ok(!JSON.stringify(a.body).includes('B only'), 'alice switched to A sees none of B');
  });

  it('exports the org’s orders as CSV, formulas neutralised', async () => {
    await t.mutate('orders.create', { orgId: w.aRef, customer: '=HYPERLINK("x")' }, aliceA());
    const res = await t.get(`/api/orgs/${w.aRef}/orders.csv`, aliceA());
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.match(text, /"'=HYPERLINK\(""x""\)"/);
    assert.ok(!text.includes('B only'));
  });

  it('limits search per org with 429, Retry-After and the RateLimit headers; other orgs unaffected', async () => {
    const statuses: number[] = [];
    let last: Headers | null = null;
    for (let i = 0; i < 4; i++) {
      const r = await t.query('orders.search', { orgId: w.aRef, q: 'x' }, aliceA());
      statuses.push(r.status);
      last = r.headers;
      if (i === 0) {
        assert.equal(r.headers.get('ratelimit-policy'), '"search";q=3;w=60');
        assert.match(r.headers.get('ratelimit') ?? '', /^"search";r=2;t=(59|60)$/);
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    const retry = Number(last!.get('retry-after'));
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    assert.equal(last!.get('cache-control'), 'no-store');
    assert.equal((await t.query('orders.search', { orgId: w.bRef, q: 'x' }, bobB())).status, 200);
  });

  it('connects an org to a provider with a single-use, user-bound state and PKCE', async () => {
    const start = await fetch(`${t.url}/api/integrations/acme-crm/connect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceA()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ returnTo: '/settings/integrations' }),
    });
    assert.equal(start.status, 200);
    const { authorize_url } = (await start.json()) as { authorize_url: string };
    assert.equal(new URL(authorize_url).searchParams.get('code_challenge_method'), 'S256');
    const consent = await fetch(authorize_url, { redirect: 'manual' });
    assert.equal(consent.status, 302);
    const callback = consent.headers.get('location')!;
    // A colleague cannot finish alice's flow, and the attempt spends the state.
    const colleague = await t.get(new URL(callback).pathname + new URL(callback).search, t.clerk.token(w.carol, w.a));
    assert.equal(colleague.status, 400);
    const again = await fetch(`${t.url}/api/integrations/acme-crm/connect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceA()}` },
    });
    const url2 = ((await again.json()) as { authorize_url: string }).authorize_url;
    const cb2 = (await fetch(url2, { redirect: 'manual' })).headers.get('location')!;
    const done = await fetch(cb2, { headers: { authorization: `Bearer ${aliceA()}` }, redirect: 'manual' });
    assert.equal(done.status, 302);
    assert.equal(done.headers.get('location'), '/settings/integrations?connected=acme-crm');
    const replay = await fetch(cb2, { headers: { authorization: `Bearer ${aliceA()}` }, redirect: 'manual' });
    assert.equal(replay.status, 400);
    const list = (await (await t.get('/api/integrations', aliceA())).json()) as any[];
    assert.deepEqual(list.map((c) => c.provider), ['acme-crm']);
    assert.deepEqual((await (await t.get('/api/integrations', bobB())).json()) as any[], []);
    const open = await fetch(`${t.url}/api/integrations/acme-crm/connect`, {
      method: 'POST',
      headers: { authorization: `Bearer ${aliceA()}` },
      body: JSON.stringify({ returnTo: '//evil.test/x' }),
    });
    assert.equal(open.status, 400);
  });

  it('answers unknown routes and crashes with JSON, never a stack', async () => {
    const res = await t.get('/nope', null);
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: 'not_found' });
    const bad = await fetch(`${t.url}/api/trpc/orders.create`, { method: 'POST', headers: { authorization: `Bearer ${aliceA()}` }, body: '{not json' });
    assert.ok(bad.status >= 400 && bad.status < 500);
    assert.ok(!(await bad.text()).includes('at '));
  });
});
