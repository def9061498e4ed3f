/**
 * Drizzle's view of the tables that migrations/*.sql create (the SQL is the
 * source of truth: RLS policies and grants do not live in Drizzle).
 */
import { boolean, index, integer, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

const timestamps = {
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
};

export const organizations = pgTable('organizations', {
  id: uuid('id').primaryKey().defaultRandom(),
  clerkId: text('clerk_id').notNull().unique(),
  slug: text('slug').notNull(),
  name: text('name').notNull(),
  ...timestamps,
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  deletedAt: timestamp('deleted_at', { withTimezone: true }),
});

export const users = pgTable('users', {
  id: uuid('id').primaryKey().defaultRandom(),
  clerkId: text('clerk_id').notNull().unique(),
  email: text('email'),
  firstName: text('first_name'),
  lastName: text('last_name'),
  ...timestamps,
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  deletedAt: timestamp('deleted_at', { withTimezone: true }),
});

export const memberships = pgTable(
  'memberships',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    clerkId: text('clerk_id').notNull(),
    userId: uuid('user_id').notNull(),
    role: text('role').notNull(),
    ...timestamps,
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] })],
);

export const orders = pgTable(
  'orders',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    customer: text('customer').notNull(),
    reference: text('reference').notNull().default(''),
    notes: text('notes').notNull().default(''),
    status: text('status', { enum: ['open', 'paid', 'shipped', 'cancelled'] }).notNull().default('open'),
    createdBy: uuid('created_by').notNull(),
    createdByEmail: text('created_by_email'),
    ...timestamps,
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] }), index('orders_org_created').on(t.organizationId, t.createdAt)],
);

export const orderLines = pgTable(
  'order_lines',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    orderId: uuid('order_id').notNull(),
    description: text('description').notNull(),
    quantity: integer('quantity').notNull(),
    unitCents: integer('unit_cents').notNull(),
    ...timestamps,
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] })],
);

export const orderNotes = pgTable(
  'order_notes',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    orderId: uuid('order_id').notNull(),
    authorId: uuid('author_id').notNull(),
    body: text('body').notNull(),
    ...timestamps,
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] })],
);

export const tasks = pgTable(
  'tasks',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    ownerId: uuid('owner_id').notNull(),
    title: text('title').notNull(),
    details: text('details').notNull().default(''),
    done: boolean('done').notNull().default(false),
    ...timestamps,
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] })],
);

export const integrations = pgTable(
  'integrations',
  {
    organizationId: uuid('organization_id').notNull(),
    id: uuid('id').notNull().defaultRandom(),
    provider: text('provider').notNull(),
    externalAccount: text('external_account').notNull(),
    scopes: text('scopes').notNull().default(''),
    accessTokenSealed: text('access_token_sealed').notNull(),
    refreshTokenSealed: text('refresh_token_sealed'),
    connectedBy: uuid('connected_by').notNull(),
    ...timestamps,
  },
  (t) => [primaryKey({ columns: [t.organizationId, t.id] })],
);

export const schema = { organizations, users, memberships, orders, orderLines, orderNotes, tasks, integrations };

/** The tables RLS confines to one org: every query on them runs in withTenant. */
export type TenantTable =
  | typeof memberships
  | typeof orders
  | typeof orderLines
  | typeof orderNotes
  | typeof tasks
  | typeof integrations;
