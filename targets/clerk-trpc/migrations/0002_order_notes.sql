-- Notes on an order (added after the first release). A tenant table like
-- the others: composite keys, RLS enabled and forced, restrictive org policy.
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

ALTER TABLE order_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE order_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY order_notes_app_access ON order_notes AS PERMISSIVE FOR ALL TO clerk_trpc_app
    USING (true) WITH CHECK (true);
CREATE POLICY order_notes_org_isolation ON order_notes AS RESTRICTIVE FOR ALL TO PUBLIC
    USING (organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
GRANT SELECT, INSERT, UPDATE, DELETE ON order_notes TO clerk_trpc_app;
