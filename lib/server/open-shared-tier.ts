/**
 * The Redis tier a server's options ask for. Its modules (ioredis' among
 * them) are loaded only by a server that has one: the others start without
 * paying for them.
 */
import type { SharedTier } from '../tier/shared-tier.js'
import { DEFAULT_REDIS_PREFIX, DEFAULT_REDIS_TIMEOUT, type ServerOptions } from './server-options.js'

export async function openSharedTier(redis: string | readonly string[], opts: Pick<ServerOptions, 'redisPrefix' | 'redisTimeout' | 'redisInode'>): Promise<SharedTier> {
  const [{ parseRedisNodes }, { SharedTier }] = await Promise.all([import('../tier/redis-nodes.js'), import('../tier/shared-tier.js')])
  return new SharedTier({ nodes: parseRedisNodes(redis), prefix: opts.redisPrefix ?? DEFAULT_REDIS_PREFIX, timeoutMs: opts.redisTimeout ?? DEFAULT_REDIS_TIMEOUT, inode: opts.redisInode })
}
