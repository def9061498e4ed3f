/**
 * GET /api/orgs/:orgId/orders.csv: the org's orders as CSV (a download
 * link on the orders page). Same tenancy rule as the tRPC procedures.
 */
import { desc, sql } from 'drizzle-orm';
import { orderLines, orders } from '../db/schema.ts';
import { withTenant } from '../db/tenant.ts';
import type { AppDeps } from '../deps.ts';
import type { Tenant } from '../tenancy.ts';

/** A CSV field: quoted, and never read as a formula by a spreadsheet. */
export function csvField(value: unknown): string {
  let text = value === null || value === undefined ? '' : value instanceof Date ? value.toISOString() : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return `"${text.replace(/"/g, '""')}"`;
}

export async function ordersCsv(tenant: Tenant, deps: AppDeps): Promise<Response> {
  const rows = await withTenant(deps.db, { orgId: tenant.orgId, userId: tenant.user.id }, (t) =>
    t.tx
      .select({
        id: orders.id,
        customer: orders.customer,
        reference: orders.reference,
        status: orders.status,
        createdAt: orders.createdAt,
        createdBy: orders.createdByEmail,
        lines: sql<number>`count(${orderLines.id})::int`,
        totalCents: sql<number>`coalesce(sum(${orderLines.quantity} * ${orderLines.unitCents}), 0)::int`,
      })
      .from(orders)
      .leftJoin(orderLines, sql`${orderLines.organizationId} = ${orders.organizationId} AND ${orderLines.orderId} = ${orders.id}`)
      .where(t.where(orders))
      .groupBy(orders.organizationId, orders.id)
      .orderBy(desc(orders.createdAt)),
  );
  const header = ['id', 'customer', 'reference', 'status', 'created_at', 'created_by', 'lines', 'total_cents'];
  const lines = [header.join(',')];
  for (const r of rows) {
    lines.push([r.id, r.customer, r.reference, r.status, r.createdAt, r.createdBy, r.lines, r.totalCents].map(csvField).join(','));
  }
  return new Response(`${lines.join('\r\n')}\r\n`, {
    status: 200,
    headers: {
      'content-type': 'text/csv; charset=utf-8',
      'content-disposition': 'attachment; filename="orders.csv"',
      'cache-control': 'no-store',
    },
  });
}

