/**
 * Migrations and roles, run at start over the owner/admin connection
 * (`DATABASE_URL`), never by the app role.
 *
 * - `clerk_trpc_owner` (NOLOGIN) owns every table: migrations run as it.
 * - `clerk_trpc_app` (NOLOGIN) holds the app's grants; the LOGIN role of
 *   `APP_DATABASE_URL` is made a member of it, with the password from that
 *   URL. It is not the owner and must not be a superuser or have BYPASSRLS:
 *   the migrator refuses such a role rather than serve with RLS off.
 * - Plain SQL files in migrations/, applied once each in name order and
 *   recorded in `schema_migrations`; an advisory lock serialises instances.
 *   A second start on the same database applies nothing and only re-syncs
 *   the login role's password.
 */
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import postgres from 'postgres';
import type { Flaws } from '../flaws.ts';

export const OWNER_ROLE = 'clerk_trpc_owner';
export const APP_GROUP_ROLE = 'clerk_trpc_app';
const LOCK_KEY = 0x7e4a17;

const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

export class MigrationError extends Error {}

/** The login role and password of a postgres:// URL. */
export function loginOf(databaseUrl: string): { role: string; password: string } {
  const parsed = new URL(databaseUrl);
  const role = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  if (!role) throw new MigrationError('APP_DATABASE_URL has no user name');
  if (!password) throw new MigrationError('APP_DATABASE_URL has no password');
  return { role, password };
}

/** The migration files to apply, in order (`flawed/` replaces a file for its flaw). */
async function migrationFiles(flaws: Flaws): Promise<{ name: string; file: string }[]> {
  const names = (await readdir(MIGRATIONS_DIR)).filter((n) => n.endsWith('.sql')).sort();
  return names.map((name) => {
    // FLAW notes-table-without-rls: the notes migration as first written
    // (see migrations/flawed/0002_order_notes.sql for the mistake).
    const flawed = name === '0002_order_notes.sql' && flaws.has('notes-table-without-rls');
    return { name, file: path.join(MIGRATIONS_DIR, flawed ? 'flawed' : '', name) };
  });
}

export async function migrate(databaseUrl: string, appDatabaseUrl: string, flaws: Flaws): Promise<string[]> {
  const login = loginOf(appDatabaseUrl);
  if (login.role === OWNER_ROLE || login.role === APP_GROUP_ROLE) {
    throw new MigrationError(`APP_DATABASE_URL must name a login role of its own, not ${login.role}`);
  }
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const applied: string[] = [];
    await admin.begin(async (tx) => {
      await tx`SELECT pg_advisory_xact_lock(${LOCK_KEY})`;
      for (const role of [OWNER_ROLE, APP_GROUP_ROLE]) {
        const [exists] = await tx`SELECT 1 AS one FROM pg_roles WHERE rolname = ${role}`;
        if (!exists) await createRole(tx, `CREATE ROLE ${role} NOLOGIN NOSUPERUSER NOBYPASSRLS`);
      }
      await tx.unsafe(`GRANT USAGE, CREATE ON SCHEMA public TO ${OWNER_ROLE}`);
      await tx.unsafe(`GRANT USAGE ON SCHEMA public TO ${APP_GROUP_ROLE}`);
      await tx.unsafe(`REVOKE CREATE ON SCHEMA public FROM PUBLIC`);
      await tx.unsafe(
        `CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const done = new Set((await tx`SELECT name FROM schema_migrations`).map((r) => r.name as string));
      for (const { name, file } of await migrationFiles(flaws)) {
        if (done.has(name)) continue;
        const text = await readFile(file, 'utf8');
        await tx.unsafe(`SET LOCAL ROLE ${OWNER_ROLE}`);
        await tx.unsafe(text);
        await tx.unsafe('RESET ROLE');
        await tx`INSERT INTO schema_migrations (name) VALUES (${name})`;
        applied.push(name);
      }
      await syncLoginRole(tx, login.role, login.password);
    });
    return applied;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/**
 * Runs a CREATE ROLE that another instance (or another database's migrator:
 * roles are cluster-wide, advisory locks are not) may be running at the same
 * moment; losing that race is fine. Returns whether this one created it.
 */
async function createRole(tx: postgres.TransactionSql, statement: string): Promise<boolean> {
  try {
    await tx.savepoint((sp) => sp.unsafe(statement));
    return true;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '42710' || code === '23505') return false; // duplicate_object, unique_violation
    throw e;
  }
}

async function syncLoginRole(tx: postgres.TransactionSql, role: string, password: string): Promise<void> {
  const [existing] = await tx`
    SELECT rolsuper, rolbypassrls, pg_has_role(rolname, ${OWNER_ROLE}, 'MEMBER') AS owner
    FROM pg_roles WHERE rolname = ${role}`;
  if (existing && (existing.rolsuper || existing.rolbypassrls || existing.owner)) {
    throw new MigrationError(
      `APP_DATABASE_URL's role ${role} is a superuser, has BYPASSRLS or is the table owner: row-level security would not apply to it`,
    );
  }
  // Utility statements take no bind parameters: let the server quote.
  const [create] = await tx`
    SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS INHERIT PASSWORD %L', ${role}::text, ${password}::text) AS stmt,
           format('ALTER ROLE %I WITH LOGIN PASSWORD %L', ${role}::text, ${password}::text) AS alter`;
  if (existing || !(await createRole(tx, create!.stmt as string))) await tx.unsafe(create!.alter as string);
  const [grant] = await tx`SELECT format('GRANT %I TO %I', ${APP_GROUP_ROLE}::text, ${role}::text) AS grant`;
  await tx.unsafe(grant!.grant as string);
  const [connect] = await tx`
    SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), ${APP_GROUP_ROLE}::text) AS connect`;
  await tx.unsafe(connect!.connect as string);
}
