/** The Redis tier a server's options ask for, against a real Redis (Debian's redis-server on a loopback port). */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { DEFAULT_REDIS_PREFIX } from '../../lib/server/server-options.js'
import { openSharedTier } from '../../lib/server/open-shared-tier.js'
import { NO_REDIS, type RedisCluster, redisInstalled, startRedisCluster } from '../helpers/redis-cluster.js'

const skip = redisInstalled() ? false : NO_REDIS

describe('openSharedTier', { skip }, () => {
  let redis: RedisCluster
  before(async () => {
    redis = await startRedisCluster({ cluster: false })
  })
  after(() => redis?.stop())

  test('reaches the Redis its URL names, with the default prefix', async (t) => {
    const tier = await openSharedTier(redis.urls, {})
    t.after(() => tier.close())
    assert.equal(await tier.ready, true)
    assert.equal(tier.prefix, DEFAULT_REDIS_PREFIX)
  })

  test('takes the prefix asked for, and seeds as a list or comma-separated', async (t) => {
    const listed = await openSharedTier([redis.urls], { redisPrefix: 'team-a:' })
    t.after(() => listed.close())
    const joined = await openSharedTier(`${redis.urls},${redis.urls}`, { redisPrefix: 'team-b:' })
    t.after(() => joined.close())
    assert.deepEqual(await Promise.all([listed.ready, joined.ready]), [true, true])
    assert.deepEqual([listed.prefix, joined.prefix], ['team-a:', 'team-b:'])
    assert.match(listed.key('a.bin', 'v1', 4096, 0), /^team-a:/)
  })

  test('refuses a URL that is not redis:// with EBADREQ', async () => {
    await assert.rejects(openSharedTier('http://127.0.0.1:6379', {}), { code: 'EBADREQ' })
  })
})
