/**
 * The org's dashboard: order counts, the latest orders and the org's name
 * and size from Clerk. Cached per org for 30 s (dropped on every order write).
 */
import { count, desc } from 'drizzle-orm';
import { OrgCacheKey } from '../../cache.ts';
import { orders } from '../../db/schema.ts';
import { inTenant, orgProcedure, router } from '../init.ts';

const TTL_SECS = 30;

export interface Stats {
  organization: { name: string | null; membersCount: number | null };
  orders: Record<string, number>;
  recent: { id: string; customer: string; status: string }[];
  generatedAt: string;
}

export const dashboardRouter = router({
  stats: orgProcedure.query(async ({ ctx }): Promise<Stats> => {
    const key = ctx.deps.flaws.has('stats-cache-keyed-by-user')
      ? OrgCacheKey.ofUser(ctx.tenant.user.id, 'stats')
      : OrgCacheKey.of(ctx.tenant.orgId, 'stats');
    const cached = await ctx.deps.cache.get<Stats>(key);
    if (cached) return cached;

    let organization: Stats['organization'] = { name: null, membersCount: null };
    try {
      const org = await ctx.deps.clerk.organizations.getOrganization({ organizationId: ctx.tenant.clerkOrgId });
      organization = { name: org.name, membersCount: org.membersCount ?? null };
    } catch (error) {
      ctx.deps.log({ level: 'warn', msg: 'clerk organizations.getOrganization failed', status: (error as { status?: number }).status });
    }
    const stats = await inTenant(ctx, async (t) => {
      const byStatus = await t.tx
        .select({ status: orders.status, n: count() })
        .from(orders)
        .where(t.where(orders))
        .groupBy(orders.status);
      const recent = await t.tx
        .select({ id: orders.id, customer: orders.customer, status: orders.status })
        .from(orders)
        .where(t.where(orders))
        .orderBy(desc(orders.createdAt))
        .limit(5);
      const counts: Record<string, number> = { open: 0, paid: 0, shipped: 0, cancelled: 0 };
      for (const row of byStatus) counts[row.status] = Number(row.n);
      return { organization, orders: counts, recent, generatedAt: new Date().toISOString() };
    });
    await ctx.deps.cache.set(key, stats, TTL_SECS);
    return stats;
  }),
});

