/** Notes on an order: children of an order, like lines. */
import { eq } from 'drizzle-orm';
import { z } from 'zod';
import { orderNotes } from '../../db/schema.ts';
import { inTenant, notFound, orgProcedure, router } from '../init.ts';
import { findOrder } from './orders.ts';

const noteFields = {
  id: orderNotes.id,
  orderId: orderNotes.orderId,
  body: orderNotes.body,
  createdAt: orderNotes.createdAt,
};

export const notesRouter = router({
  create: orgProcedure.input(z.object({ orderId: z.uuid(), body: z.string().trim().min(1).max(5000) })).mutation(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const order = await findOrder(t, input.orderId);
      if (!order) throw notFound();
      const [note] = await t.tx
        .insert(orderNotes)
        .values({ organizationId: t.orgId, orderId: order.id, authorId: ctx.tenant.user.id, body: input.body })
        .returning(noteFields);
      return note!;
    }),
  ),

  list: orgProcedure.input(z.object({ orderId: z.uuid() })).query(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      // FLAW notes-table-without-rls: written with the notes migration (see
      // migrations/flawed/0002_order_notes.sql): "the order id is a UUID
      // nobody can guess", so the notes are fetched by order id alone,
      // without resolving the order in the org first.
      if (ctx.deps.flaws.has('notes-table-without-rls')) {
        return t.tx.select(noteFields).from(orderNotes).where(eq(orderNotes.orderId, input.orderId)).orderBy(orderNotes.createdAt);
      }
      const order = await findOrder(t, input.orderId);
      if (!order) throw notFound();
      return t.tx.select(noteFields).from(orderNotes).where(t.where(orderNotes, eq(orderNotes.orderId, order.id))).orderBy(orderNotes.createdAt);
    }),
  ),

  byId: orgProcedure.input(z.object({ id: z.uuid() })).query(({ ctx, input }) =>
    inTenant(ctx, async (t) => {
      const [note] = await t.tx.select(noteFields).from(orderNotes).where(t.where(orderNotes, eq(orderNotes.id, input.id)));
      if (!note) throw notFound();
      return note;
    }),
  ),
});
