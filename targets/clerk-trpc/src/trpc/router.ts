import { router } from './init.ts';
import { dashboardRouter } from './routers/dashboard.ts';
import { linesRouter } from './routers/lines.ts';
import { notesRouter } from './routers/notes.ts';
import { ordersRouter } from './routers/orders.ts';
import { tasksRouter } from './routers/tasks.ts';

export const appRouter = router({
  orders: ordersRouter,
  lines: linesRouter,
  notes: notesRouter,
  tasks: tasksRouter,
  dashboard: dashboardRouter,
});

export type AppRouter = typeof appRouter;
