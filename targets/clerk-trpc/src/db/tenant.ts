/**
 * The tenancy boundary in the database: every query on a tenant table runs
 * inside withTenant(), which opens a transaction, sets the org (and the
 * acting user) as transaction-local settings that the RLS policies read, and
 * hands out a TenantScope whose `where()` puts the org predicate in front of
 * every condition. RLS is the second wall: a query that forgets the scope
 * (or runs outside withTenant) sees nothing, it does not see everything.
 */
import { and, eq, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.ts';
import type { TenantTable } from './schema.ts';

export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];

export interface TenantContext {
  /** The app's own org id (organizations.id), never the Clerk id. */
  orgId: string;
  /** The app's own user id (users.id); null for system work (webhooks). */
  userId: string | null;
}

export class TenantScope {
  constructor(
    readonly tx: Tx,
    readonly orgId: string,
    readonly userId: string | null,
  ) {}

  /** The org predicate of `table`, ANDed with `conditions`. */
  where(table: TenantTable, ...conditions: (SQL | undefined)[]): SQL {
    return and(eq(table.organizationId, this.orgId), ...conditions) as SQL;
  }
}

export async function withTenant<T>(db: Db, ctx: TenantContext, fn: (t: TenantScope) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    // `true`: local to this transaction, so a pooled connection never
    // carries one request's org into the next.
    await tx.execute(
      sql`SELECT set_config('app.org_id', ${ctx.orgId}, true), set_config('app.user_id', ${ctx.userId ?? ''}, true)`,
    );
    return fn(new TenantScope(tx, ctx.orgId, ctx.userId));
  });
}

/** A transaction acting for one user across orgs (their own memberships only). */
export async function withUser<T>(db: Db, userId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT set_config('app.user_id', ${userId}, true)`);
    return fn(tx);
  });
}
