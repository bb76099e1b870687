import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseRedisNodes } from '../../lib/tier/redis-nodes.js'

test('seed URLs: comma-separated or a list, default port, credentials, IPv6', () => {
  assert.deepEqual(parseRedisNodes('redis://10.0.0.5:7000, redis://10.0.0.6'), [
    { host: '10.0.0.5', port: 7000 },
    { host: '10.0.0.6', port: 6379 },
  ])
  assert.deepEqual(parseRedisNodes(['redis://u:p%40ss@h:1', 'redis://[::1]:7001/']), [
    { host: 'h', port: 1, username: 'u', password: 'p@ss' },
    { host: '::1', port: 7001 },
  ])
  assert.deepEqual(parseRedisNodes('redis://:secret@h:2'), [{ host: 'h', port: 2, password: 'secret' }])
})

test('anything else is refused with EBADREQ and says why', () => {
  for (const [spec, why] of [
    ['', /no Redis URL/],
    ['10.0.0.5:7000', /unsupported Redis URL scheme|not a Redis URL/],
    ['rediss://h:1', /only redis:\/\//],
    ['http://h:1', /only redis:\/\//],
    ['redis://h:1/3', /database/],
  ] as const) {
    assert.throws(() => parseRedisNodes(spec), (err: Error & { code?: string }) => err.code === 'EBADREQ' && why.test(err.message), spec)
  }
})
