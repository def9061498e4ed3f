/**
 * Test fixtures: a Clerk instance (JWKS and the Backend API reads the app
 * makes, Clerk v2 session tokens signed with its own RSA key), Svix-signed
 * webhooks as Clerk sends them, a fresh database per app from
 * TEST_DATABASE_URL (a superuser URL) and TEST_REDIS_URL.
 */
import { generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import superjson from 'superjson';
import { Webhook } from 'svix';
import { startApp, type RunningApp } from '../src/app.ts';
import { loadConfig, publishableKeyFor } from '../src/config.ts';

export const ISSUER_HOST = 'clerk.clerk-trpc.test';
export const ISSUER = `https://${ISSUER_HOST}`;
export const ORIGIN = 'http://app.clerk-trpc.test';
export const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
export const SECRET_KEY = `sk_test_${randomBytes(16).toString('hex')}`;

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required (see README.md, "Tests")`);
  return value;
}

function clerkId(prefix: string): string {
  return `${prefix}${randomBytes(20).toString('base64url').replace(/[-_]/g, 'x').slice(0, 27)}`;
}

export interface FixtureUser {
  id: string;
  email: string;
}

export interface FixtureOrg {
  id: string;
  slug: string;
  name: string;
  members: Map<string, string>;
}

/** A Clerk instance the app talks to at CLERK_API_URL. */
export class ClerkFixture {
  readonly users = new Map<string, FixtureUser>();
  readonly orgs = new Map<string, FixtureOrg>();
  readonly kid = clerkId('ins_');
  /** Backend API requests seen (method and path), to assert the app made them. */
  readonly seen: string[] = [];
  private readonly privateKey: KeyObject;
  private readonly jwk: Record<string, unknown>;
  private server!: Server;
  apiUrl = '';

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.jwk = { ...publicKey.export({ format: 'jwk' }), kid: this.kid, alg: 'RS256', use: 'sig' };
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0]!;
      this.seen.push(`${req.method} ${path}`);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.headers.authorization !== `Bearer ${SECRET_KEY}`) return send(401, { errors: [{ code: 'authorization_invalid', message: 'bad key' }] });
      if (path === '/v1/jwks') return send(200, { keys: [this.jwk] });
      let m = /^\/v1\/users\/([^/]+)$/.exec(path);
      if (m) {
        const user = this.users.get(m[1]!);
        return user ? send(200, this.userJson(user)) : send(404, { errors: [{ code: 'resource_not_found', message: 'not found' }] });
      }
      m = /^\/v1\/organizations\/([^/]+)$/.exec(path);
      if (m) {
        const org = this.orgs.get(m[1]!);
        return org ? send(200, this.orgJson(org)) : send(404, { errors: [{ code: 'resource_not_found', message: 'not found' }] });
      }
      send(404, { errors: [{ code: 'resource_not_found', message: 'not found' }] });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    this.apiUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  user(email: string): FixtureUser {
    const user = { id: clerkId('user_'), email };
    this.users.set(user.id, user);
    return user;
  }

  org(name: string): FixtureOrg {
    const org = { id: clerkId('org_'), slug: `${name.toLowerCase()}-${randomBytes(3).toString('hex')}`, name, members: new Map() };
    this.orgs.set(org.id, org);
    return org;
  }

  userJson(user: FixtureUser) {
    const emailId = `idn_${user.id.slice(5)}`;
    return {
      id: user.id,
      object: 'user',
      username: null,
      first_name: null,
      last_name: null,
      image_url: '',
      has_image: false,
      primary_email_address_id: emailId,
      primary_phone_number_id: null,
      primary_web3_wallet_id: null,
      password_enabled: false,
      two_factor_enabled: false,
      totp_enabled: false,
      backup_code_enabled: false,
      email_addresses: [
        { id: emailId, object: 'email_address', email_address: user.email, verification: { status: 'verified', strategy: 'admin' }, linked_to: [] },
      ],
      phone_numbers: [],
      web3_wallets: [],
      external_accounts: [],
      public_metadata: {},
      private_metadata: {},
      unsafe_metadata: {},
      external_id: null,
      last_sign_in_at: null,
      banned: false,
      locked: false,
      created_at: Date.now(),
      updated_at: Date.now(),
      last_active_at: null,
    };
  }

  orgJson(org: FixtureOrg) {
    return {
      id: org.id,
      object: 'organization',
      name: org.name,
      slug: org.slug,
      image_url: '',
      has_image: false,
      members_count: org.members.size,
      pending_invitations_count: 0,
      max_allowed_memberships: 0,
      admin_delete_enabled: true,
      public_metadata: {},
      private_metadata: {},
      created_by: null,
      created_at: Date.now(),
      updated_at: Date.now(),
    };
  }

  membershipJson(org: FixtureOrg, user: FixtureUser, role: string) {
    return {
      id: `orgmem_${user.id.slice(5, 20)}${org.id.slice(4, 16)}`,
      object: 'organization_membership',
      role,
      permissions: [],
      public_metadata: {},
      private_metadata: {},
      organization: this.orgJson(org),
      public_user_data: { user_id: user.id, identifier: user.email, first_name: null, last_name: null, image_url: '', has_image: false },
      created_at: Date.now(),
      updated_at: Date.now(),
    };
  }

  /** A Clerk v2 session token (`claims` override or remove with undefined). */
  token(user: FixtureUser, org: FixtureOrg | null, claims: Record<string, unknown> = {}, header: Record<string, unknown> = {}): string {
    const now = Math.floor(Date.now() / 1000);
    const role = org?.members.get(user.id);
    const payload: Record<string, unknown> = {
      sub: user.id,
      sid: `sess_${user.id.slice(5)}`,
      iss: ISSUER,
      azp: ORIGIN,
      iat: now,
      nbf: now - 5,
      exp: now + 60,
      jti: randomUUID(),
      v: 2,
      sts: 'active',
      fva: [0, -1],
      ...(org ? { o: { id: org.id, slg: org.slug, rol: (role ?? 'org:member').replace(/^org:/, '') } } : {}),
      ...claims,
    };
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    const h = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: this.kid, ...header })).toString('base64url');
    const p = Buffer.from(JSON.stringify(payload)).toString('base64url');
    const signature = sign('sha256', Buffer.from(`${h}.${p}`), this.privateKey).toString('base64url');
    return `${h}.${p}.${signature}`;
  }
}

/** A fresh database on the test cluster: its superuser URL and an app-role URL. */
export async function freshDatabase(): Promise<{ url: string; appUrl: string; drop(): Promise<void> }> {
  const admin = env('TEST_DATABASE_URL');
  const name = `clerk_trpc_t_${randomBytes(5).toString('hex')}`;
  const root = postgres(admin, { max: 1, onnotice: () => {} });
  await root.unsafe(`CREATE DATABASE ${name}`);
  await root.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const appUrl = new URL(url);
  appUrl.username = `${name}_app`;
  appUrl.password = APP_PASSWORD;
  return {
    url: url.toString(),
    appUrl: appUrl.toString(),
    async drop() {
      const r = postgres(admin, { max: 1, onnotice: () => {} });
      await r.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await r.unsafe(`DROP ROLE IF EXISTS ${name}_app`);
      await r.end();
    },
  };
}

const APP_PASSWORD = randomBytes(12).toString('hex');

export interface TestApp {
  app: RunningApp;
  clerk: ClerkFixture;
  db: { url: string; appUrl: string };
  url: string;
  /** POSTs a Svix-signed Clerk event; returns status and JSON body. */
  webhook(type: string, data: unknown, secret?: string): Promise<{ status: number; body: any }>;
  /** Provisions users, orgs and memberships through webhooks, as Clerk would. */
  provision(orgs: FixtureOrg[], users: FixtureUser[]): Promise<Map<string, string>>;
  query(path: string, input: unknown, token: string | null): Promise<{ status: number; body: any; headers: Headers }>;
  mutate(path: string, input: unknown, token: string | null): Promise<{ status: number; body: any; headers: Headers }>;
  get(path: string, token: string | null, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

export async function startTestApp(options: { flaw?: string; env?: Record<string, string>; clerk?: ClerkFixture } = {}): Promise<TestApp> {
  const clerk = options.clerk ?? (await new ClerkFixture().start());
  const database = await freshDatabase();
  const config = loadConfig({
    PORT: '0',
    DATABASE_URL: database.url,
    APP_DATABASE_URL: database.appUrl,
    REDIS_URL: env('TEST_REDIS_URL'),
    CLERK_API_URL: clerk.apiUrl,
    CLERK_SECRET_KEY: SECRET_KEY,
    CLERK_PUBLISHABLE_KEY: publishableKeyFor(ISSUER_HOST),
    CLERK_AUTHORIZED_PARTIES: ORIGIN,
    CLERK_WEBHOOK_SIGNING_SECRET: WEBHOOK_SECRET,
    OAUTH_STATE_TTL_SECS: '600',
    TARGET_FLAW: options.flaw ?? '',
    ...options.env,
  });
  const logs: Record<string, unknown>[] = [];
  const app = await startApp(config, (line) => logs.push(line));
  const url = app.url;

  async function webhook(type: string, data: unknown, secret = WEBHOOK_SECRET) {
    const body = JSON.stringify({ data, object: 'event', type, timestamp: Date.now(), instance_id: 'ins_test' });
    const msgId = `msg_${randomBytes(12).toString('hex')}`;
    const signature = new Webhook(secret).sign(msgId, new Date(), body);
    const res = await fetch(`${url}/api/webhooks/clerk`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'svix-id': msgId,
        'svix-timestamp': String(Math.floor(Date.now() / 1000)),
        'svix-signature': signature,
      },
      body,
    });
    return { status: res.status, body: await res.json() };
  }

  async function send(method: 'GET' | 'POST', path: string, input: unknown, token: string | null) {
    const serialized = superjson.serialize(input);
    const target =
      method === 'GET' ? `${url}/api/trpc/${path}?input=${encodeURIComponent(JSON.stringify(serialized))}` : `${url}/api/trpc/${path}`;
    const res = await fetch(target, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: method === 'POST' ? JSON.stringify(serialized) : undefined,
    });
    const raw = (await res.json()) as any;
    const body = raw.result ? superjson.deserialize(raw.result.data) : raw;
    return { status: res.status, body, headers: res.headers };
  }

  return {
    app,
    clerk,
    db: database,
    url,
    webhook,
    async provision(orgs, users) {
      const ids = new Map<string, string>();
      for (const user of users) {
        const r = await webhook('user.created', clerk.userJson(user));
        ids.set(user.id, r.body.id);
      }
      for (const org of orgs) {
        const r = await webhook('organization.created', clerk.orgJson(org));
        ids.set(org.id, r.body.id);
      }
      for (const org of orgs) {
        for (const [userId, role] of org.members) {
          await webhook('organizationMembership.created', clerk.membershipJson(org, clerk.users.get(userId)!, role));
        }
      }
      return ids;
    },
    query: (path, input, token) => send('GET', path, input, token),
    mutate: (path, input, token) => send('POST', path, input, token),
    get: (path, token, headers = {}) => fetch(`${url}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } }),
    async close() {
      await app.close();
      if (!options.clerk) await clerk.close();
      await database.drop();
    },
  };
}

/** Two orgs: alice admin of A (and member of B), bob admin of B, carol member of A. */
export async function twoOrgWorld(t: TestApp) {
  const { clerk } = t;
  const alice = clerk.user('alice@a.test');
  const bob = clerk.user('bob@b.test');
  const carol = clerk.user('carol@a.test');
  const a = clerk.org('Acme');
  const b = clerk.org('Bolt');
  a.members.set(alice.id, 'org:admin');
  a.members.set(carol.id, 'org:member');
  b.members.set(bob.id, 'org:admin');
  b.members.set(alice.id, 'org:member');
  const ids = await t.provision([a, b], [alice, bob, carol]);
  return { alice, bob, carol, a, b, aRef: ids.get(a.id)!, bRef: ids.get(b.id)!, ids };
}
