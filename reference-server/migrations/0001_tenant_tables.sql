-- Tenant tables. Every one of them:
--  * has organization_id text NOT NULL, never empty;
--  * keys and references are composite with organization_id, so no row can
--    point at another org's row, and unique violations cannot probe other orgs;
--  * has an index leading with organization_id (the primary key);
--  * has RLS enabled and FORCED (the owner is confined too);
--  * has a PERMISSIVE policy that grants the app role access and a
--    RESTRICTIVE policy that confines every role to app.org_id. Restrictive
--    policies are ANDed, so a permissive policy added later cannot widen
--    access across orgs. A missing or empty app.org_id matches no row.

CREATE TABLE app.projects (
    organization_id text NOT NULL CHECK (organization_id <> ''),
    id text NOT NULL,
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE app.documents (
    organization_id text NOT NULL CHECK (organization_id <> ''),
    id text NOT NULL,
    project_id text NOT NULL,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    FOREIGN KEY (organization_id, project_id)
        REFERENCES app.projects (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_org_project ON app.documents (organization_id, project_id);

CREATE TABLE app.exports (
    organization_id text NOT NULL CHECK (organization_id <> ''),
    id text NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done', 'failed')),
    requested_by text NOT NULL,
    result jsonb,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (organization_id, id)
);

CREATE TABLE app.integrations (
    organization_id text NOT NULL CHECK (organization_id <> ''),
    id text NOT NULL,
    provider text NOT NULL,
    external_account text NOT NULL,
    access_token_enc bytea NOT NULL,
    refresh_token_enc bytea,
    scopes text NOT NULL DEFAULT '',
    connected_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, id),
    UNIQUE (organization_id, provider)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['projects', 'documents', 'exports', 'integrations'] LOOP
        EXECUTE format('ALTER TABLE app.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE app.%I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY %I ON app.%I AS PERMISSIVE FOR ALL TO tenantry_app USING (true) WITH CHECK (true)',
            t || '_app_access', t);
        EXECUTE format(
            'CREATE POLICY %I ON app.%I AS RESTRICTIVE FOR ALL TO PUBLIC '
            'USING (organization_id = NULLIF(current_setting(''app.org_id'', true), '''')) '
            'WITH CHECK (organization_id = NULLIF(current_setting(''app.org_id'', true), ''''))',
            t || '_org_isolation', t);
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON app.%I TO tenantry_app', t);
    END LOOP;
END $$;
