/**
 * The server's defaults, in the one place the server and the CLI take them
 * from: the values README documents, and the memory held outside the cache,
 * 1/64 of the cache from 4 to 16 MiB.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  DEFAULT_AUTH_BACKOFF,
  DEFAULT_AUTH_TIMEOUT,
  DEFAULT_CACHE_SIZE,
  DEFAULT_GRACE,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REDIS_PREFIX,
  DEFAULT_REDIS_TIMEOUT,
  DEFAULT_REQUEST_TIMEOUT,
  defaultMaxBuffered,
} from '../../lib/server/server-options.js'

const MiB = 1024 * 1024
const GiB = 1024 * MiB

describe('server defaults', () => {
  test('are the documented ones', () => {
    assert.equal(DEFAULT_CACHE_SIZE, GiB)
    assert.equal(DEFAULT_MAX_CONNECTIONS, 256)
    assert.equal(DEFAULT_IDLE_TIMEOUT, 600_000)
    assert.equal(DEFAULT_REQUEST_TIMEOUT, 10_000)
    assert.equal(DEFAULT_AUTH_TIMEOUT, 5_000)
    assert.equal(DEFAULT_AUTH_BACKOFF, 1_000)
    assert.equal(DEFAULT_GRACE, 10_000)
    assert.equal(DEFAULT_REDIS_PREFIX, 'cacheserv:')
    assert.equal(DEFAULT_REDIS_TIMEOUT, 500)
  })

  test('defaultMaxBuffered is 1/64 of the cache, no less than 4 MiB and no more than 16 MiB', () => {
    const cases: [number, number][] = [
      [0, 4 * MiB],
      [64 * MiB, 4 * MiB],
      [256 * MiB, 4 * MiB],
      [256 * MiB + 64, 4 * MiB + 1],
      [512 * MiB, 8 * MiB],
      [GiB - 1, 16 * MiB - 1],
      [DEFAULT_CACHE_SIZE, 16 * MiB],
      [64 * GiB, 16 * MiB],
    ]
    for (const [cache, buffered] of cases) assert.equal(defaultMaxBuffered(cache), buffered, `cache ${cache}`)
    for (const cache of [1000, 300 * MiB + 7, 3 * GiB + 1]) assert.ok(Number.isInteger(defaultMaxBuffered(cache)), `whole bytes for ${cache}`)
  })
})
