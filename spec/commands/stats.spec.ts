/**
 * The `stats` command end to end: every field PROTOCOL.md lists, with values
 * that agree with what the test did to the server.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { POLICIES } from '../../lib/cache/policy.js'
import { connect } from '../../lib/client/client.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'
import { STATS_NUMBERS } from '../helpers/stats.js'

const MiB = 1024 * 1024


describe('stats', () => {
  test('a fresh server reports every numeric field, all zero but the limit and its own connection', async (t) => {
    const { url } = await startServer(t, { cacheSize: 8 * MiB })
    const client = await connectTo(t, url)
    const s = await client.stats()
    for (const k of STATS_NUMBERS) assert.equal(typeof s[k], 'number', `${k} is a number`)
    assert.deepEqual(
      { hits: s.hits, misses: s.misses, hitBytes: s.hitBytes, missBytes: s.missBytes, evictions: s.evictions, diskReads: s.diskReads },
      { hits: 0, misses: 0, hitBytes: 0, missBytes: 0, evictions: 0, diskReads: 0 },
    )
    assert.equal(s.cacheBytes, 0)
    assert.equal(s.entries, 0)
    assert.equal(s.cacheLimit, 8 * MiB)
    assert.equal(s.connections, 1)
    assert.equal(s.totalConnections, 1)
    assert.equal(s.bytesServed, 0)
    assert.equal(s.nacks, 0)
    assert.ok(s.uptime >= 0)
  })

  test('after reads, the counters agree with the bytes read', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const a = writeFile(root, 'a.bin', 2 * MiB + 3) // 3 blocks
    const b = writeFile(root, 'b.bin', 1000) // 1 block
    const client = await connectTo(t, url)
    let read = 0
    for (const rel of ['a.bin', 'b.bin', 'a.bin', 'a.bin']) read += (await client.readFile(rel)).length
    const range = await client.readFile('b.bin', { offset: 10, length: 20 })
    assert.ok(range.equals(b.subarray(10, 30)))
    read += range.length

    const s = await client.stats()
    assert.equal(s.bytesServed, read, 'bytesServed equals the bytes read')
    assert.equal(s.misses, 4, 'one miss per block on first touch')
    assert.equal(s.hits, 3 + 3 + 1, 'every later block lookup is a hit')
    assert.equal(s.missBytes, a.length + b.length)
    assert.equal(s.hitBytes, 2 * a.length + range.length, 'a range counts its own bytes, not its whole block')
    assert.equal(s.hitBytes + s.missBytes, s.bytesServed, 'every byte served came from a hit or a miss')
    assert.ok(s.diskReads >= s.misses, `diskReads ${s.diskReads} < misses ${s.misses}`)
    assert.equal(s.cacheBytes, a.length + b.length)
    assert.equal(s.entries, 4)
    assert.equal(s.evictions, 0)
    assert.equal(s.nacks, 0)
  })

  test('range reads and shared disk reads count the bytes served, never more', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const data = writeFile(root, 'big.bin', 4 * MiB)
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect(url)))
    t.after(() => Promise.all(clients.map((c) => c.close())))
    // Four readers of the same cold file at once: one disk read per block, shared (single-flight).
    const got = await Promise.all(clients.map((c) => c.readFile('big.bin')))
    for (const g of got) assert.ok(g.equals(data))
    // Small ranges of a cached 1 MiB block, as a seekable reader fetches them.
    let ranges = 0
    for (let i = 0; i < 16; i++) ranges += (await clients[0].readFile('big.bin', { offset: i * 4096 + 5, length: 1000 })).length
    const s = server.stats()
    assert.equal(s.misses, 4)
    assert.equal(s.missBytes, data.length)
    assert.equal(s.hits, 12 + 16)
    assert.equal(s.hitBytes, 3 * data.length + ranges)
    assert.equal(s.bytesServed, 4 * data.length + ranges)
    assert.equal(s.hitBytes + s.missBytes, s.bytesServed)
  })

  test('warm loads blocks without counting them as hits or misses', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const data = writeFile(root, 'w.bin', 2 * MiB + 1)
    const client = await connectTo(t, url)
    await client.warm('w.bin')
    let s = server.stats()
    assert.equal(s.cacheBytes, data.length)
    assert.deepEqual([s.hits, s.misses, s.hitBytes, s.missBytes], [0, 0, 0, 0])
    assert.ok((await client.readFile('w.bin')).equals(data))
    s = server.stats()
    assert.deepEqual([s.hits, s.misses, s.hitBytes, s.missBytes, s.bytesServed], [3, 0, data.length, 0, data.length])
  })

  test('evictions count blocks pushed out when the cache is over its limit', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 2 * MiB })
    const big = writeFile(root, 'big.bin', 5 * MiB)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('big.bin')).equals(big))
    const s = await client.stats()
    assert.equal(s.evictions, 3, '5 blocks into room for 2')
    assert.equal(s.cacheBytes, 2 * MiB)
    assert.equal(s.cacheLimit, 2 * MiB)
  })

  test('connections counts open connections; totalConnections every one since start', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const second = await connect(url)
    const third = await connect(url)
    const open = await client.stats()
    assert.equal(open.connections, 3)
    assert.equal(open.totalConnections, 3)
    await second.close()
    await third.close()
    // The server notices a hang-up asynchronously: poll, bounded.
    let s = await client.stats()
    for (let i = 0; i < 100 && s.connections !== 1; i++) {
      await sleep(20)
      s = await client.stats()
    }
    assert.equal(s.connections, 1)
    assert.equal(s.totalConnections, 3)
  })

  test('uptime grows and is in seconds', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const first = (await client.stats()).uptime
    await sleep(50)
    const second = (await client.stats()).uptime
    assert.ok(second > first, `${second} > ${first}`)
    assert.ok(second < 60, `uptime ${second} looks like milliseconds, not seconds`)
  })

  test('the command answers what server.stats() says', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'f.bin', 3000)
    const client = await connectTo(t, url)
    await client.readFile('f.bin')
    const viaWire = await client.stats()
    const local = server.stats()
    for (const k of STATS_NUMBERS) if (k !== 'uptime') assert.equal(viaWire[k], local[k as keyof typeof local], k)
  })

  test('policy names the eviction policy: the default, or the one the server was started with', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const s = await client.stats()
    assert.ok((POLICIES as readonly string[]).includes(s.policy), `policy ${JSON.stringify(s.policy)}`)
    for (const policy of POLICIES) {
      const other = await startServer(t, { policy })
      const c = await connectTo(t, other.url)
      assert.equal((await c.stats()).policy, policy)
    }
  })
})
