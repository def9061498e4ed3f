/**
 * Personal tasks: owned by one user inside an org. Only their owner lists,
 * reads, changes or deletes them — other members of the same org, admins
 * included, get "not found". RLS keeps them in the org; the owner predicate
 * is this router's.
 */
import { and, desc, eq, sql, type SQL } from 'drizzle-orm';
import { z } from 'zod';
import { tasks } from '../../db/schema.ts';
import type { TenantScope } from '../../db/tenant.ts';
import type { Flaws } from '../../flaws.ts';
import { inTenant, notFound, orgProcedure, router } from '../init.ts';

const taskFields = {
  id: tasks.id,
  title: tasks.title,
  details: tasks.details,
  done: tasks.done,
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
};

/** The caller's own tasks in the scope's org, and `more`. */
function mine(t: TenantScope, ...more: (SQL | undefined)[]): SQL {
  return t.where(tasks, eq(tasks.ownerId, t.userId!), ...more);
}

/**
 * FLAW tasks-visible-to-org: tasks were shared by the whole org in v1;
 * "private tasks" shipped with the owner check added to update and delete
 * only, and the list and the detail page kept reading every task of the org.
 */
function readable(t: TenantScope, flaws: Flaws, ...more: (SQL | undefined)[]): SQL {
  return flaws.has('tasks-visible-to-org') ? t.where(tasks, ...more) : mine(t, ...more);
}

export const tasksRouter = router({
  list: orgProcedure.input(z.object({ done: z.boolean().optional() })).query(({ ctx, input }) =>
    inTenant(ctx, (t) =>
      t.tx
        .select(taskFields)
        .from(tasks)
        .where(readable(t, ctx.deps.flaws, input.done === undefined ? undefined : eq(tasks.done, input.done)))
        .orderBy(desc(tasks.createdAt))
        .limit(200),
    ),
  ),

  byId: orgProcedure.input(z.object({ id: z.uuid() })).query(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const [task] = await t.tx.select(taskFields).from(tasks).where(readable(t, ctx.deps.flaws, eq(tasks.id, input.id)));
      if (!task) throw notFound();
      return task;
    }),
  ),

  create: orgProcedure
    .input(z.object({ title: z.string().trim().min(1).max(200), details: z.string().max(5000).default('') }))
    .mutation(({ ctx, input }) =>
      inTenant(ctx, async (t) => {
        const [task] = await t.tx
          .insert(tasks)
          .values({ organizationId: t.orgId, ownerId: ctx.tenant.user.id, title: input.title, details: input.details })
          .returning(taskFields);
        return task!;
      }),
    ),

  update: orgProcedure
    .input(
      z.object({
        id: z.uuid(),
        title: z.string().trim().min(1).max(200).optional(),
        details: z.string().max(5000).optional(),
        done: z.boolean().optional(),
      }),
    )
    .mutation(({ ctx, input }) =>
      inTenant(ctx, async (t) => {
        const { id, orgId: _orgId, ...changes } = input;
        const [task] = await t.tx
          .update(tasks)
          .set({ ...changes, updatedAt: sql`now()` })
          .where(mine(t, eq(tasks.id, id)))
          .returning(taskFields);
        if (!task) throw notFound();
        return task;
      }),
    ),

  delete: orgProcedure.input(z.object({ id: z.uuid() })).mutation(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const [row] = await t.tx.delete(tasks).where(and(mine(t, eq(tasks.id, input.id)))).returning({ id: tasks.id });
      if (!row) throw notFound();
      return { id: row.id, deleted: true };
    }),
  ),
});
