/**
 * The org-keyed cache. A key can only be built from a Tenant's org id, so a
 * cached answer can never be shared by two orgs. Redis trouble is a miss.
 */
import type { Redis } from 'ioredis';

export class OrgCacheKey {
  private constructor(readonly text: string) {}

  static of(orgId: string, name: string): OrgCacheKey {
    return new OrgCacheKey(`cache:org:${orgId}:${name}`);
  }

  /**
   * FLAW stats-cache-keyed-by-user: the dashboard began as "my stats" and
   * was keyed by the user; when it became the org's dashboard the key stayed,
   * so a user in two orgs is served the first org's numbers in the second.
   */
  static ofUser(userId: string, name: string): OrgCacheKey {
    return new OrgCacheKey(`cache:user:${userId}:${name}`);
  }
}

export class OrgCache {
  constructor(private readonly redis: Redis) {}

  async get<T>(key: OrgCacheKey): Promise<T | undefined> {
    try {
      const text = await this.redis.get(key.text);
      return text === null ? undefined : (JSON.parse(text) as T);
    } catch {
      return undefined;
    }
  }

  async set(key: OrgCacheKey, value: unknown, ttlSecs: number): Promise<void> {
    try {
      await this.redis.set(key.text, JSON.stringify(value), 'EX', ttlSecs);
    } catch {
      // A cache that cannot store is a cache that misses.
    }
  }

  async drop(key: OrgCacheKey): Promise<void> {
    try {
      await this.redis.del(key.text);
    } catch {
      // Expiry bounds how stale it can get.
    }
  }
}
