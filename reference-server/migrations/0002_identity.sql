-- The identity store (Clerk-compatible): users, organizations, roles,
-- memberships, clients (devices), sign-in attempts, sessions, JWT templates,
-- and the test outbox. Not tenant data: it lives in its own schema, readable
-- only by tenantry_identity; the app role (tenantry_app) has no access.
-- Timestamps are timestamptz; the APIs render them as Unix milliseconds.

-- Unix milliseconds, the APIs' time format.
CREATE FUNCTION identity.ms(t timestamptz) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT
    AS $$ SELECT (extract(epoch FROM t) * 1000)::bigint $$;

CREATE TABLE identity.users (
    id text PRIMARY KEY,
    email_address_id text NOT NULL UNIQUE,
    email text NOT NULL CHECK (email <> ''),
    -- PHC string (argon2id); NULL: no password (sign-in with password refused).
    password_hash text,
    first_name text,
    last_name text,
    public_metadata jsonb NOT NULL DEFAULT '{}',
    private_metadata jsonb NOT NULL DEFAULT '{}',
    unsafe_metadata jsonb NOT NULL DEFAULT '{}',
    -- A second factor (email code) is required at every sign-in.
    two_factor_enabled boolean NOT NULL DEFAULT false,
    banned boolean NOT NULL DEFAULT false,
    last_sign_in_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON identity.users (lower(email));

CREATE TABLE identity.organizations (
    id text PRIMARY KEY,
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name text NOT NULL CHECK (name <> ''),
    public_metadata jsonb NOT NULL DEFAULT '{}',
    private_metadata jsonb NOT NULL DEFAULT '{}',
    max_allowed_memberships integer NOT NULL DEFAULT 0 CHECK (max_allowed_memberships >= 0),
    created_by text REFERENCES identity.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Roles are instance-wide, as in Clerk. Permissions are org:<feature>:<perm>;
-- system permissions (org:sys_*) are not carried in tokens.
CREATE TABLE identity.roles (
    key text PRIMARY KEY CHECK (key ~ '^org:[a-z0-9_]{1,64}$'),
    name text NOT NULL,
    description text NOT NULL DEFAULT '',
    permissions text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO identity.roles (key, name, description, permissions) VALUES
    ('org:admin', 'Admin', 'Manages the organization and all of its data',
     ARRAY['org:projects:read', 'org:projects:write', 'org:projects:delete',
           'org:exports:create', 'org:integrations:manage']),
    ('org:member', 'Member', 'Reads and writes projects',
     ARRAY['org:projects:read', 'org:projects:write']);

CREATE TABLE identity.memberships (
    id text PRIMARY KEY,
    organization_id text NOT NULL REFERENCES identity.organizations (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    role text NOT NULL REFERENCES identity.roles (key),
    public_metadata jsonb NOT NULL DEFAULT '{}',
    private_metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, user_id)
);
CREATE INDEX memberships_user ON identity.memberships (user_id);

-- A client is a device (a browser): identified by the __client cookie, whose
-- value is stored only as its SHA-256.
CREATE TABLE identity.clients (
    id text PRIMARY KEY,
    token_sha256 bytea NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_active_at timestamptz NOT NULL DEFAULT now()
);

-- Devices on which a user completed a sign-in: password-only sign-ins from
-- other devices need an email code first (client trust).
CREATE TABLE identity.trusted_clients (
    client_id text NOT NULL REFERENCES identity.clients (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    trusted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, user_id)
);

CREATE TABLE identity.sign_ins (
    id text PRIMARY KEY,
    client_id text NOT NULL REFERENCES identity.clients (id) ON DELETE CASCADE,
    identifier text,
    user_id text REFERENCES identity.users (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('needs_identifier', 'needs_first_factor',
        'needs_second_factor', 'needs_client_trust', 'complete', 'abandoned')),
    first_factor_at timestamptz,
    second_factor_at timestamptz,
    -- The pending email code: SHA-256 of (sign-in id, code); one code per
    -- attempt, bounded attempts, short expiry.
    code_sha256 bytea,
    code_expires_at timestamptz,
    code_attempts integer NOT NULL DEFAULT 0,
    password_attempts integer NOT NULL DEFAULT 0,
    created_session_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    expire_at timestamptz NOT NULL
);
CREATE INDEX sign_ins_client ON identity.sign_ins (client_id);

CREATE TABLE identity.sessions (
    id text PRIMARY KEY,
    client_id text NOT NULL REFERENCES identity.clients (id) ON DELETE CASCADE,
    user_id text NOT NULL REFERENCES identity.users (id) ON DELETE CASCADE,
    status text NOT NULL CHECK (status IN ('active', 'revoked', 'ended', 'removed', 'expired')),
    last_active_organization_id text REFERENCES identity.organizations (id) ON DELETE SET NULL,
    first_factor_at timestamptz NOT NULL,
    second_factor_at timestamptz,
    last_active_at timestamptz NOT NULL DEFAULT now(),
    expire_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user ON identity.sessions (user_id);
CREATE INDEX sessions_client ON identity.sessions (client_id);

CREATE TABLE identity.jwt_templates (
    id text PRIMARY KEY,
    name text NOT NULL UNIQUE,
    claims jsonb NOT NULL,
    lifetime integer NOT NULL,
    allowed_clock_skew integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Session-token signing keys (RSA-2048, PKCS#8 DER), shared by every
-- instance and kept across restarts. The active key has retired_at NULL
-- (exactly one, enforced by the partial unique index); retired keys still
-- verify for the configured overlap.
CREATE TABLE identity.signing_keys (
    kid text PRIMARY KEY,
    private_pkcs8 bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_active ON identity.signing_keys ((true)) WHERE retired_at IS NULL;

-- Test deployments only (identity.test_outbox): the email codes that would
-- have been sent, readable through /v1/testing/outbox.
CREATE TABLE identity.outbox (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    sign_in_id text NOT NULL,
    code text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_email ON identity.outbox (lower(email), id);

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA identity TO tenantry_identity;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA identity TO tenantry_identity;
