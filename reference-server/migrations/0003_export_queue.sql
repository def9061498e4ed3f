-- The durable export queue. One row per export still to run, in the export's
-- org: a tenant table like the others (composite keys with organization_id,
-- RLS enabled and FORCED, a restrictive org policy for every command).
--
-- Workers find work through app.claim_export_job(), a SECURITY DEFINER
-- function owned by tenantry_owner with a pinned search_path. It is the only
-- cross-org step, and all it hands back is (organization_id, export_id,
-- attempts) of one job it leased with FOR UPDATE SKIP LOCKED: no tenant data.
-- The worker then runs the job as that org's tenant through TenantDb, where
-- RLS and the org filter apply as for any request. For the function to see
-- every org's queue rows, the org policy of this table exempts the owner role
-- (NOLOGIN; reached only through this function); the app role stays confined.

CREATE TABLE app.export_jobs (
    organization_id text NOT NULL CHECK (organization_id <> ''),
    export_id text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    lease_until timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, export_id),
    FOREIGN KEY (organization_id, export_id)
        REFERENCES app.exports (organization_id, id) ON DELETE CASCADE
);
CREATE INDEX export_jobs_due ON app.export_jobs (lease_until, created_at);

ALTER TABLE app.export_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.export_jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY export_jobs_app_access ON app.export_jobs AS PERMISSIVE FOR ALL TO tenantry_app
    USING (true) WITH CHECK (true);
CREATE POLICY export_jobs_claim ON app.export_jobs AS PERMISSIVE FOR ALL TO tenantry_owner
    USING (true) WITH CHECK (true);
CREATE POLICY export_jobs_org_isolation ON app.export_jobs AS RESTRICTIVE FOR ALL TO PUBLIC
    USING (organization_id = NULLIF(current_setting('app.org_id', true), '')
           OR current_user = 'tenantry_owner')
    WITH CHECK (organization_id = NULLIF(current_setting('app.org_id', true), '')
                OR current_user = 'tenantry_owner');
GRANT SELECT, INSERT, UPDATE, DELETE ON app.export_jobs TO tenantry_app;

-- Leases the oldest job that is free (never leased, or its lease ran out: a
-- worker died or its attempt failed) for lease_ms and counts the attempt.
CREATE FUNCTION app.claim_export_job(lease_ms integer)
RETURNS TABLE (organization_id text, export_id text, attempts integer)
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE app.export_jobs AS j
       SET lease_until = now() + make_interval(secs => lease_ms / 1000.0),
           attempts = j.attempts + 1
     WHERE (j.organization_id, j.export_id) = (
           SELECT q.organization_id, q.export_id
             FROM app.export_jobs AS q
            WHERE q.lease_until IS NULL OR q.lease_until <= now()
            ORDER BY q.created_at, q.export_id
            LIMIT 1
              FOR UPDATE SKIP LOCKED)
    RETURNING j.organization_id, j.export_id, j.attempts
$$;
REVOKE ALL ON FUNCTION app.claim_export_job(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.claim_export_job(integer) TO tenantry_app;
