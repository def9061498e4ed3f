/**
 * tRPC with superjson. The procedure ladder is the tenancy boundary:
 * `authedProcedure` needs a verified session, `orgProcedure` takes the
 * app's org id as `orgId` in its input and resolves it to a Tenant with
 * resolveTenant() (the session's active org, and a member of it), and
 * `adminProcedure` needs `org:admin` there. Handlers below an org procedure
 * reach tenant tables only through `inTenant()`.
 */
import { initTRPC, TRPCError } from '@trpc/server';
import superjson from 'superjson';
import { z } from 'zod';
import type { SignedIn } from '../auth/clerk.ts';
import { withTenant, type TenantScope } from '../db/tenant.ts';
import type { AppDeps } from '../deps.ts';
import { resolveTenant, type Tenant } from '../tenancy.ts';

export interface Context {
  deps: AppDeps;
  auth: SignedIn | null;
}

const t = initTRPC.context<Context>().create({
  transformer: superjson,
  isDev: false,
  errorFormatter({ shape, error }) {
    // Clients get a code, never a stack, a SQL error or an input echo.
    let message = shape.message;
    if (error.code === 'INTERNAL_SERVER_ERROR') message = 'internal_error';
    else if (error.code === 'BAD_REQUEST' || error.code === 'PARSE_ERROR') {
      if (error.cause) message = 'invalid_input';
    }
    return {
      message,
      code: shape.code,
      data: { code: shape.data.code, httpStatus: shape.data.httpStatus, path: shape.data.path },
    };
  },
});

export const router = t.router;
export const publicProcedure = t.procedure;

export const authedProcedure = t.procedure.use(({ ctx, next }) => {
  if (!ctx.auth) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'unauthenticated' });
  return next({ ctx: { auth: ctx.auth } });
});

export const orgProcedure = authedProcedure
  .input(z.object({ orgId: z.uuid() }))
  .use(async ({ ctx, input, next }) => {
    const tenant = await resolveTenant(ctx.deps.db, ctx.deps.flaws, ctx.auth, input.orgId);
    if (typeof tenant === 'string') throw new TRPCError({ code: 'FORBIDDEN', message: tenant });
    return next({ ctx: { tenant } });
  });

export const adminProcedure = orgProcedure.use(({ ctx, next }) => {
  if (ctx.tenant.role !== 'org:admin') throw new TRPCError({ code: 'FORBIDDEN', message: 'admin_only' });
  return next();
});

/** Runs `fn` in the tenant's transaction (org filter + RLS context). */
export function inTenant<T>(ctx: { deps: AppDeps; tenant: Tenant }, fn: (t: TenantScope) => Promise<T>): Promise<T> {
  return withTenant(ctx.deps.db, { orgId: ctx.tenant.orgId, userId: ctx.tenant.user.id }, fn);
}

/** A foreign id answers exactly as a missing one. */
export function notFound(): TRPCError {
  return new TRPCError({ code: 'NOT_FOUND', message: 'not_found' });
}
