/** Order lines: children of an order, reached only through an order of the caller's org. */
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { orderLines } from '../../db/schema.ts';
import { inTenant, notFound, orgProcedure, router } from '../init.ts';
import { findOrder, lineInput } from './orders.ts';

const lineFields = {
  id: orderLines.id,
  orderId: orderLines.orderId,
  description: orderLines.description,
  quantity: orderLines.quantity,
  unitCents: orderLines.unitCents,
  createdAt: orderLines.createdAt,
};

export const linesRouter = router({
  create: orgProcedure.input(lineInput.extend({ orderId: z.uuid() })).mutation(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const order = await findOrder(t, input.orderId);
      if (!order) throw notFound();
      const [line] = await t.tx
        .insert(orderLines)
        .values({ organizationId: t.orgId, orderId: order.id, description: input.description, quantity: input.quantity, unitCents: input.unitCents })
        .returning(lineFields);
      return line!;
    }),
  ),

  list: orgProcedure.input(z.object({ orderId: z.uuid() })).query(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const order = await findOrder(t, input.orderId);
      if (!order) throw notFound();
      return t.tx.select(lineFields).from(orderLines).where(t.where(orderLines, eq(orderLines.orderId, order.id))).orderBy(orderLines.createdAt);
    }),
  ),

  byId: orgProcedure.input(z.object({ id: z.uuid() })).query(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const [line] = await t.tx.select(lineFields).from(orderLines).where(t.where(orderLines, eq(orderLines.id, input.id)));
      if (!line) throw notFound();
      return line;
    }),
  ),

  delete: orgProcedure.input(z.object({ id: z.uuid() })).mutation(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const [row] = await t.tx.delete(orderLines).where(t.where(orderLines, eq(orderLines.id, input.id))).returning({ id: orderLines.id });
      if (!row) throw notFound();
      return { id: row.id, deleted: true };
    }),
  ),
});
