import type { ClerkClient } from '@clerk/backend';
import type { Redis } from 'ioredis';
import type { OrgCache } from './cache.ts';
import type { Config } from './config.ts';
import type { Db } from './db/client.ts';
import type { Flaws } from './flaws.ts';

export type Log = (line: Record<string, unknown>) => void;

/** What handlers may use: built once at start (src/app.ts). */
export interface AppDeps {
  config: Config;
  flaws: Flaws;
  db: Db;
  redis: Redis;
  clerk: ClerkClient;
  cache: OrgCache;
  log: Log;
}
