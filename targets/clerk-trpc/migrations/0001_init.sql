-- Identity mirror (orgs, users, memberships from Clerk webhooks) and the
-- tenant tables. Run by the migrator as the NOLOGIN owner role
-- `clerk_trpc_owner`; the app connects as a LOGIN role that is a member of
-- `clerk_trpc_app` only: not the owner, no BYPASSRLS.
--
-- Every tenant table:
--  * has organization_id uuid NOT NULL, leading its primary key (the index
--    every policy check uses);
--  * keys and references are composite with organization_id, so no row can
--    point at another org's row and no unique violation can probe another org;
--  * has RLS enabled and FORCED, a PERMISSIVE policy granting the app role
--    access and a RESTRICTIVE one confining every role to app.org_id (a
--    missing or empty setting matches nothing).

CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_id text NOT NULL UNIQUE,
    slug text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clerk_id text NOT NULL UNIQUE,
    email text,
    first_name text,
    last_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE memberships (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    clerk_id text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, user_id),
    UNIQUE (organization_id, clerk_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE orders (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    customer text NOT NULL,
    reference text NOT NULL DEFAULT '',
    notes text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid', 'shipped', 'cancelled')),
    created_by uuid NOT NULL REFERENCES users (id),
    created_by_email text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX orders_org_created ON orders (organization_id, created_at DESC);

CREATE TABLE order_lines (
    organization_id uuid NOT NULL,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    order_id uuid NOT NULL,
    description text NOT NULL,
    quantity integer NOT NULL CHECK (quantity > 0),
    unit_cents integer NOT NULL CHECK (unit_cents >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, order_id) REFERENCES orders (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX order_lines_org_order ON order_lines (organization_id, order_id);

-- Personal tasks: owned by one user inside an org. RLS confines them to the
-- org; the owner check is the app's (tasks router).
CREATE TABLE tasks (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title text NOT NULL,
    details text NOT NULL DEFAULT '',
    done boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);
CREATE INDEX tasks_org_owner ON tasks (organization_id, owner_id);

-- OAuth connections of an org (one per provider), tokens sealed by the app.
CREATE TABLE integrations (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    provider text NOT NULL,
    external_account text NOT NULL,
    scopes text NOT NULL DEFAULT '',
    access_token_sealed text NOT NULL,
    refresh_token_sealed text,
    connected_by uuid NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, provider)
);

GRANT SELECT, INSERT, UPDATE ON organizations, users TO clerk_trpc_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['memberships', 'orders', 'order_lines', 'tasks', 'integrations'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I AS PERMISSIVE FOR ALL TO clerk_trpc_app USING (true) WITH CHECK (true)',
            t || '_app_access', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO clerk_trpc_app', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['orders', 'order_lines', 'tasks', 'integrations'] LOOP
        EXECUTE format(
            'CREATE POLICY %I ON %I AS RESTRICTIVE FOR ALL TO PUBLIC '
            'USING (organization_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.org_id'', true), '''')::uuid)',
            t || '_org_isolation', t);
    END LOOP;
END $$;

-- Memberships are read in two ways: an org's members (app.org_id set) and
-- one user's organizations for GET /api/me (app.user_id set, no org yet).
-- Writes (webhooks) always run with the membership's org set.
CREATE POLICY memberships_org_isolation ON memberships AS RESTRICTIVE FOR ALL TO PUBLIC
    USING (organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid
           OR user_id = NULLIF(current_setting('app.user_id', true), '')::uuid)
    WITH CHECK (organization_id = NULLIF(current_setting('app.org_id', true), '')::uuid);
