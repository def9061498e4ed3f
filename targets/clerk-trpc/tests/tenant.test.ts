import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { eq } from 'drizzle-orm';
import postgres from 'postgres';
import { connect, type Database } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { orders } from '../src/db/schema.ts';
import { withTenant } from '../src/db/tenant.ts';
import { Flaws } from '../src/flaws.ts';
import { startTestApp, twoOrgWorld, type TestApp } from './helpers.ts';

describe('withTenant and row-level security', () => {
  let t: TestApp;
  let app: Database;
  let raw: postgres.Sql;
  let w: Awaited<ReturnType<typeof twoOrgWorld>>;
  let aliceRef: string;
  let bobRef: string;

  before(async () => {
    t = await startTestApp();
    w = await twoOrgWorld(t);
    aliceRef = w.ids.get(w.alice.id)!;
    bobRef = w.ids.get(w.bob.id)!;
    app = connect(t.db.appUrl, 2);
    raw = postgres(t.db.appUrl, { max: 1, onnotice: () => {} });
    for (const [orgId, userId, customer] of [
      [w.aRef, aliceRef, 'a-customer'],
      [w.bRef, bobRef, 'b-customer'],
    ] as const) {
      await withTenant(app.db, { orgId, userId }, (s) => s.tx.insert(orders).values({ organizationId: orgId, customer, createdBy: userId }));
    }
  });
  after(async () => {
    await raw.end();
    await app.close();
    await t.close();
  });

  it('a query through the wrapper sees its org only, even without its own predicate', async () => {
    const mine = await withTenant(app.db, { orgId: w.aRef, userId: aliceRef }, (s) => s.tx.select().from(orders).where(s.where(orders)));
    assert.deepEqual(mine.map((o) => o.customer), ['a-customer']);
    // Without the org predicate RLS still confines it.
    const unfiltered = await withTenant(app.db, { orgId: w.aRef, userId: aliceRef }, (s) => s.tx.select().from(orders));
    assert.deepEqual(unfiltered.map((o) => o.customer), ['a-customer']);
  });

  it('another org’s rows are invisible by id, and cannot be written', async () => {
    const [bOrder] = await withTenant(app.db, { orgId: w.bRef, userId: bobRef }, (s) => s.tx.select().from(orders));
    const seen = await withTenant(app.db, { orgId: w.aRef, userId: aliceRef }, (s) => s.tx.select().from(orders).where(eq(orders.id, bOrder!.id)));
    assert.deepEqual(seen, []);
    const updated = await withTenant(app.db, { orgId: w.aRef, userId: aliceRef }, (s) =>
      s.tx.update(orders).set({ customer: 'taken' }).where(eq(orders.id, bOrder!.id)).returning(),
    );
    assert.deepEqual(updated, []);
    await assert.rejects(
      withTenant(app.db, { orgId: w.aRef, userId: aliceRef }, (s) => s.tx.insert(orders).values({ organizationId: w.bRef, customer: 'planted', createdBy: aliceRef })),
      (e: Error & { cause?: Error }) => /row-level security/.test(e.cause?.message ?? e.message),
    );
  });

  it('the app role without context sees nothing, and cannot switch RLS off', async () => {
    assert.equal((await raw`SELECT customer FROM orders`).length, 0);
    assert.equal((await raw`SELECT organization_id FROM memberships`).length, 0);
    const [role] = await raw`SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`;
    assert.deepEqual({ ...role }, { rolsuper: false, rolbypassrls: false });
    const [owner] = await raw`SELECT pg_has_role(current_user, relowner, 'MEMBER') AS owns FROM pg_class WHERE relname = 'orders'`;
    assert.equal(owner!.owns, false);
    await assert.rejects(raw`ALTER TABLE orders DISABLE ROW LEVEL SECURITY`, /must be owner/);
    await assert.rejects(raw`TRUNCATE orders`, /permission denied/);
  });

  it('the org setting is transaction-local: a pooled connection forgets it', async () => {
    const one = postgres(t.db.appUrl, { max: 1, onnotice: () => {} });
    await one.begin((tx) => tx`SELECT set_config('app.org_id', ${w.aRef}, true)`);
    assert.equal((await one`SELECT customer FROM orders`).length, 0);
    assert.equal((await one`SELECT current_setting('app.org_id', true) AS org`)[0]!.org, '');
    await one.end();
  });

  it('every tenant table has RLS enabled and forced and a restrictive org policy', async () => {
    const admin = postgres(t.db.url, { max: 1, onnotice: () => {} });
    const tables = await admin`
      SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
             EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND NOT p.polpermissive) AS restrictive
      FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organization_id'
      WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace ORDER BY 1`;
    await admin.end();
    assert.deepEqual(
      tables.map((r) => r.relname),
      ['integrations', 'memberships', 'order_lines', 'order_notes', 'orders', 'tasks'],
    );
    for (const r of tables) assert.ok(r.relrowsecurity && r.relforcerowsecurity && r.restrictive, r.relname);
  });

  it('migrations are idempotent: a second start applies nothing', async () => {
    assert.deepEqual(await migrate(t.db.url, t.db.appUrl, Flaws.none()), []);
  });

  it('the migrator refuses an app role that RLS would not apply to', async () => {
    const superuserAsApp = new URL(t.db.url);
    superuserAsApp.password = 'x';
    await assert.rejects(migrate(t.db.url, superuserAsApp.toString(), Flaws.none()), /superuser/);
  });
});
