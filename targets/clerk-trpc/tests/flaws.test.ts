/**
 * Every flaw switch is accepted (the app starts and is healthy with it), an
 * unknown one refuses to start, the manifest names exactly the switches, and
 * each flaw shows the mistake it is meant to be — the clean app, on the same
 * requests, does not (api.test.ts, webhook.test.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import postgres from 'postgres';
import { FLAW_NAMES, type FlawName } from '../src/flaws.ts';
import { ClerkFixture, startTestApp, twoOrgWorld, type TestApp } from './helpers.ts';

type World = Awaited<ReturnType<typeof twoOrgWorld>>;

async function startFlow(t: TestApp, token: string): Promise<string> {
  const start = await fetch(`${t.url}/api/integrations/acme-crm/connect`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const { authorize_url } = (await start.json()) as { authorize_url: string };
  return authorize_url;
}

async function searches(t: TestApp, w: World, headers: (i: number) => Record<string, string>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < 4; i++) {
    const input = encodeURIComponent(JSON.stringify({ json: { orgId: w.aRef, q: 'x' } }));
    const r = await fetch(`${t.url}/api/trpc/orders.search?input=${input}`, {
      headers: { authorization: `Bearer ${t.clerk.token(w.alice, w.a)}`, ...headers(i) },
    });
    out.push(r.status);
  }
  return out;
}

/** What each flaw lets through (the clean app refuses the same). */
const demos: Record<FlawName, { env?: Record<string, string>; show(t: TestApp, w: World): Promise<void> }> = {
  'org-input-unchecked': {
    async show(t, w) {
      await t.mutate('orders.create', { orgId: w.aRef, customer: 'A canary' }, t.clerk.token(w.alice, w.a));
      const r = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.bob, null));
      assert.equal(r.status, 200);
      assert.match(JSON.stringify(r.body), /A canary/);
    },
  },
  'membership-not-active-org': {
    async show(t, w) {
      await t.mutate('orders.create', { orgId: w.aRef, customer: 'A canary' }, t.clerk.token(w.alice, w.a));
      const r = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.b));
      assert.equal(r.status, 200);
    },
  },
  'tasks-visible-to-org': {
    async show(t, w) {
      await t.mutate('tasks.create', { orgId: w.aRef, title: 'alice private' }, t.clerk.token(w.alice, w.a));
      const r = await t.query('tasks.list', { orgId: w.aRef }, t.clerk.token(w.carol, w.a));
      assert.match(JSON.stringify(r.body), /alice private/);
    },
  },
  'order-search-no-org-filter': {
    async show(t, w) {
      await t.mutate('orders.create', { orgId: w.aRef, customer: 'A canary' }, t.clerk.token(w.alice, w.a));
      const bob = t.clerk.token(w.bob, w.b);
      assert.deepEqual((await t.query('orders.search', { orgId: w.bRef, q: 'canary' }, bob)).body, [], 'RLS still holds');
      const admin = postgres(t.db.url, { max: 1, onnotice: () => {} });
      await admin`ALTER TABLE orders DISABLE ROW LEVEL SECURITY`; // the layer ablation
      await admin.end();
      assert.match(JSON.stringify((await t.query('orders.search', { orgId: w.bRef, q: 'canary' }, bob)).body), /A canary/);
    },
  },
  'notes-table-without-rls': {
    async show(t, w) {
      const order = (await t.mutate('orders.create', { orgId: w.aRef, customer: 'c' }, t.clerk.token(w.alice, w.a))).body as any;
      await t.mutate('notes.create', { orgId: w.aRef, orderId: order.id, body: 'A note canary' }, t.clerk.token(w.alice, w.a));
      const r = await t.query('notes.list', { orgId: w.bRef, orderId: order.id }, t.clerk.token(w.bob, w.b));
      assert.match(JSON.stringify(r.body), /A note canary/);
    },
  },
  'no-authorized-parties': {
    async show(t, w) {
      const r = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.a, { azp: 'https://other-app.test' }));
      assert.equal(r.status, 200);
    },
  },
  'issuer-not-pinned': {
    async show(t, w) {
      const r = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.a, { iss: 'https://clerk.other.test' }));
      assert.equal(r.status, 200);
    },
  },
  'pending-sessions-accepted': {
    async show(t, w) {
      const r = await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.a, { sts: 'pending' }));
      assert.equal(r.status, 200);
    },
  },
  'webhook-signature-unverified': {
    async show(t, w) {
      const forged = await t.webhook('organization.deleted', { id: w.a.id, object: 'organization', deleted: true }, `whsec_${Buffer.from('guess').toString('base64')}`);
      assert.equal(forged.status, 200);
      assert.equal((await t.query('orders.list', { orgId: w.aRef }, t.clerk.token(w.alice, w.a))).status, 403, 'org A was deleted by a forged event');
    },
  },
  'membership-deleted-ignored': {
    async show(t, w) {
      const token = t.clerk.token(w.carol, w.a);
      await t.webhook('organizationMembership.deleted', t.clerk.membershipJson(w.a, w.carol, 'org:member'));
      assert.equal((await t.query('orders.list', { orgId: w.aRef }, token)).status, 200);
    },
  },
  'stats-cache-keyed-by-user': {
    async show(t, w) {
      await t.mutate('orders.create', { orgId: w.aRef, customer: 'A canary' }, t.clerk.token(w.alice, w.a));
      await t.query('dashboard.stats', { orgId: w.aRef }, t.clerk.token(w.alice, w.a));
      const b = await t.query('dashboard.stats', { orgId: w.bRef }, t.clerk.token(w.alice, w.b));
      assert.match(JSON.stringify(b.body), /A canary/);
    },
  },
  'ratelimit-key-forwarded-ip': {
    env: { RATE_LIMITS: 'search=3/60' },
    async show(t, w) {
      assert.deepEqual(await searches(t, w, (i) => ({ 'x-forwarded-for': `10.0.0.${i}` })), [200, 200, 200, 200]);
    },
  },
  'ratelimit-bypass-read-once': {
    env: { RATE_LIMITS: 'search=3/60' },
    async show(t, w) {
      writeFileSync(t.app.deps.config.rateLimitBypassFile!, `${w.a.id}\n`);
      await new Promise((r) => setTimeout(r, 1500));
      assert.deepEqual(await searches(t, w, () => ({})), [200, 200, 200, 429]);
    },
  },
  'ratelimit-store-error-500': {
    env: { REDIS_URL: 'redis://127.0.0.1:1/0' },
    async show(t, w) {
      assert.deepEqual(await searches(t, w, () => ({})), [500, 500, 500, 500]);
    },
  },
  'oauth-state-ttl-ms-as-secs': {
    async show(t, w) {
      const url = await startFlow(t, t.clerk.token(w.alice, w.a));
      const state = new URL(url).searchParams.get('state')!;
      const ttl = await t.app.deps.redis.ttl(`oauth:state:${createHash('sha256').update(state).digest('base64url')}`);
      assert.ok(ttl > 600, `ttl ${ttl}`);
    },
  },
  'oauth-state-org-only': {
    async show(t, w) {
      const url = await startFlow(t, t.clerk.token(w.alice, w.a));
      const callback = (await fetch(url, { redirect: 'manual' })).headers.get('location')!;
      const r = await fetch(callback, { headers: { authorization: `Bearer ${t.clerk.token(w.carol, w.a)}` }, redirect: 'manual' });
      assert.equal(r.status, 302, 'a colleague finished alice’s flow');
    },
  },
};

// The flaw apps are independent (a database each, random ids in Redis): run them side by side.
describe('flaw switches', { concurrency: 4 }, () => {
  const clerk = new ClerkFixture();
  before(() => clerk.start());
  after(() => clerk.close());

  it('flaws.json names exactly the switches of src/flaws.ts', () => {
    const manifest = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', 'flaws.json'), 'utf8')) as { flaws: { name: string }[] };
    assert.deepEqual(manifest.flaws.map((f) => f.name).sort(), [...FLAW_NAMES].sort());
    assert.ok(FLAW_NAMES.length >= 12);
  });

  it('flaws.md is generated from flaws.json, and every flaw is commented where it lives', async () => {
    const root = path.join(import.meta.dirname, '..');
    const manifest = JSON.parse(readFileSync(path.join(root, 'flaws.json'), 'utf8'));
    const { render } = (await import('../scripts/flaws-md.mjs')) as { render(m: unknown): string };
    assert.equal(readFileSync(path.join(root, 'flaws.md'), 'utf8'), render(manifest), 'run `npm run flaws-md`');
    for (const flaw of manifest.flaws as { name: string; where: string; expected_checks: string[]; mistake: string; reason: string }[]) {
      const sources = flaw.where.split(', ').map((f) => readFileSync(path.join(root, f), 'utf8')).join('\n');
      assert.ok(sources.includes(`FLAW ${flaw.name}`), `${flaw.name}: no "FLAW ${flaw.name}" comment in ${flaw.where}`);
      for (const check of flaw.expected_checks) assert.match(check, /^[A-Z]{2,3}-\d{3}$/);
      assert.ok(flaw.mistake.length > 40 && flaw.reason.length > 20, flaw.name);
    }
  });

  it('an unknown flaw refuses to start', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: path.join(import.meta.dirname, '..'),
      env: { ...process.env, TARGET_FLAW: 'no-such-flaw', PORT: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(run.status, 2);
    assert.match(run.stderr, /TARGET_FLAW: unknown flaw "no-such-flaw"/);
  });

  for (const name of FLAW_NAMES) {
    it(`${name}: starts, is healthy and shows its mistake`, async () => {
      const bypass = path.join(mkdtempSync(path.join(tmpdir(), 'clerk-trpc-')), 'bypass.txt');
      writeFileSync(bypass, '# no org bypasses\n');
      const demo = demos[name];
      const t = await startTestApp({ flaw: name, clerk, env: { RATE_LIMIT_BYPASS_FILE: bypass, ...demo.env } });
      try {
        assert.equal((await t.get('/healthz', null)).status, 200);
        assert.deepEqual(t.app.deps.flaws.names(), [name]);
        await demo.show(t, await twoOrgWorld(t));
      } finally {
        await t.close();
      }
    });
  }
});
