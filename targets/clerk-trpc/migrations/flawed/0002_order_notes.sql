-- FLAW notes-table-without-rls: this is the migration as first written for
-- the notes feature. It was copied from a scratch script, not from 0001, and
-- the review only looked at the table's columns: row-level security is never
-- enabled, so nothing in the database keeps one org's notes from another, and
-- the notes router's own query (by order id only) is all that is left.
CREATE TABLE order_notes (
    organization_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    order_id uuid NOT NULL,
    author_id uuid NOT NULL REFERENCES users (id),
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, order_id) REFERENCES orders (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX order_notes_org_order ON order_notes (organization_id, order_id);
GRANT SELECT, INSERT, UPDATE, DELETE ON order_notes TO clerk_trpc_app;
