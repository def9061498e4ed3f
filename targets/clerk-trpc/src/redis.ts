import { Redis } from 'ioredis';

export const KEY_PREFIX = 'clerk-trpc:';

/**
 * One connection for the limiter, the cache, OAuth states and webhook
 * de-duplication. Commands fail fast while Redis is down (no offline queue,
 * one-second timeout): each caller decides what an outage means for it.
 */
export function connectRedis(url: string): Redis {
  return new Redis(url, {
    keyPrefix: KEY_PREFIX,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    connectTimeout: 2000,
    retryStrategy: () => 250,
  });
}
