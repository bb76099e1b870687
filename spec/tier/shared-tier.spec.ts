/**
 * The shared tier against a real Redis Cluster of 3 masters (Debian's
 * redis-server on loopback ports): two servers on one root play two hosts
 * with the same files under their roots.
 */
import assert from 'node:assert/strict'
import { utimesSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test, type TestContext } from 'node:test'
import { Cluster } from 'ioredis'
import type { CacheServer } from '../../lib/server/server.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { NO_REDIS, type RedisCluster, redisInstalled, startRedisCluster } from '../helpers/redis-cluster.js'
import { connectTo, type Running, startServer } from '../helpers/server.js'
import { runClient, startServerProcess } from '../helpers/cli.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024
const skip = redisInstalled() ? false : NO_REDIS

/** Wait until `server` has stored `bytes` in Redis (stores do not hold up reads). */
async function stored(server: CacheServer, bytes: number): Promise<void> {
  assert.ok(await poll(() => server.stats().sharedWrittenBytes >= bytes, 10_000), `stored ${server.stats().sharedWrittenBytes} of ${bytes} bytes`)
}

async function up(server: CacheServer): Promise<void> {
  assert.ok(await poll(() => server.stats().sharedUp === true, 10_000), 'the server reaches Redis')
}

/** Two servers on one root (two hosts with the same files), both sharing through Redis. */
async function twoServers(t: TestContext, root: string, redis: string, redisPrefix: string): Promise<[Running, Running]> {
  const pair = await Promise.all([startServer(t, { root, redis, redisPrefix }), startServer(t, { root, redis, redisPrefix })])
  await Promise.all(pair.map((s) => up(s.server)))
  return pair
}

describe('shared tier on a Redis Cluster', { skip }, () => {
  let cluster: RedisCluster
  let admin: Cluster
  before(async () => {
    cluster = await startRedisCluster({ masters: 3 })
    admin = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })))
  })
  after(async () => {
    admin?.disconnect()
    await cluster?.stop()
  })

  test('a second server reads nothing from disk for blocks the first stored, and its bytes are exact', async (t) => {
    const root = tempDir(t)
    const big = writeFile(root, 'train/shard-0.bin', 5 * MiB + 123)
    const small = Array.from({ length: 20 }, (_, i) => writeFile(root, `train/img-${i}.jpg`, 20_000 + i))
    const prefix = `t1-${process.pid}:`
    const a = await startServer(t, { root, redis: cluster.urls, redisPrefix: prefix })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('train/shard-0.bin'), big)
    for (let i = 0; i < small.length; i++) assert.deepEqual(await ca.readFile(`train/img-${i}.jpg`), small[i])
    const total = big.length + small.reduce((n, b) => n + b.length, 0)
    await stored(a.server, total)

    const b = await startServer(t, { root, redis: cluster.nodes[1]!.url, redisPrefix: prefix })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    assert.deepEqual(await cb.readFile('train/shard-0.bin'), big)
    for (let i = 0; i < small.length; i++) assert.deepEqual(await cb.readFile(`train/img-${i}.jpg`), small[i])
    const s = b.server.stats()
    assert.equal(s.diskReads, 0, 'the second server read nothing from disk')
    assert.equal(s.sharedHits, 6 + small.length, 'every block came from Redis')
    assert.equal(s.sharedReadBytes, total)
    assert.equal(s.sharedErrors, 0)
    assert.equal(s.sharedWrittenBytes, 0, 'blocks found in Redis are not stored again')
    // The metrics count the same.
    const metrics = await (await fetch(`${await b.server.listenHttp('127.0.0.1:0')}/-/metrics`)).text()
    assert.match(metrics, new RegExp(`^cacheserv_shared_hits_total ${6 + small.length}$`, 'm'))
    assert.match(metrics, new RegExp(`^cacheserv_shared_read_bytes_total ${total}$`, 'm'))
    assert.match(metrics, /^cacheserv_shared_errors_total 0$/m)
    // The keys are spread over the cluster's masters.
    const perNode = await Promise.all(admin.nodes('master').map((n) => n.dbsize()))
    assert.ok(perNode.filter((n) => n > 0).length >= 2, `keys on more than one master: ${perNode}`)
  })

  test('a changed file is served fresh by both servers, never from the old version\'s blocks', async (t) => {
    const root = tempDir(t)
    const prefix = `t2-${process.pid}:`
    const v1 = writeFile(root, 'data.bin', 2 * MiB)
    const [a, b] = await twoServers(t, root, cluster.urls, prefix)
    const [ca, cb] = await Promise.all([connectTo(t, a.url), connectTo(t, b.url)])
    assert.deepEqual(await ca.readFile('data.bin'), v1)
    await stored(a.server, v1.length)
    assert.deepEqual(await cb.readFile('data.bin'), v1)
    assert.equal(b.server.stats().sharedHits, 2)

    // Rewritten in place: same size, and its mtime set back to the old one (as rsync -t would).
    const v2 = writeFile(root, 'data.bin', 2 * MiB)
    const when = new Date(Date.now() - 60_000)
    utimesSync(join(root, 'data.bin'), when, when)
    assert.deepEqual(await ca.readFile('data.bin'), v2, 'the first server serves the new bytes')
    await stored(a.server, v1.length + v2.length)
    assert.deepEqual(await cb.readFile('data.bin'), v2, 'the second server serves the new bytes')
    assert.equal(b.server.stats().sharedHits, 4, 'the new version also came from Redis')
  })

  test('a value corrupted in Redis is detected, dropped, and the block read from disk', async (t) => {
    const root = tempDir(t)
    const prefix = `t3-${process.pid}:`
    const data = writeFile(root, 'x.bin', 3 * MiB)
    const a = await startServer(t, { root, redis: cluster.urls, redisPrefix: prefix })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('x.bin'), data)
    await stored(a.server, data.length)

    // Flip a byte of block 1's bytes (past the header) and cut block 2's value short.
    const st = await ca.stat('x.bin')
    const keys = await scanKeys(admin, `${prefix}*`)
    assert.equal(keys.length, 3, `three blocks stored: ${keys}`)
    const key1 = keys.find((k) => k.includes(':1:x.bin'))!
    const key2 = keys.find((k) => k.includes(':2:x.bin'))!
    const v1 = (await admin.getBuffer(key1))!
    v1[12 + 1000] ^= 0x40
    await admin.set(key1, v1)
    await admin.set(key2, (await admin.getBuffer(key2))!.subarray(0, 500))
    assert.equal(st.size, data.length)

    const b = await startServer(t, { root, redis: cluster.urls, redisPrefix: prefix })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    assert.deepEqual(await cb.readFile('x.bin'), data, 'exact bytes in spite of the damage')
    const s = b.server.stats()
    assert.equal(s.sharedCorrupt, 2)
    assert.equal(s.sharedHits, 1)
    assert.equal(s.diskReads >= 2, true, 'the two damaged blocks were read from disk')
  })

  test('slots moving between masters (ASK while migrating, MOVED after) are followed: still hits', async (t) => {
    const root = tempDir(t)
    const prefix = `t5-${process.pid}:`
    const data = writeFile(root, 'm.bin', 2 * MiB)
    const [a, b] = await twoServers(t, root, cluster.urls, prefix)
    assert.deepEqual(await (await connectTo(t, a.url)).readFile('m.bin'), data)
    await stored(a.server, data.length)
    const keys = await scanKeys(admin, `${prefix}*`)
    const k0 = keys.find((k) => k.includes(':0:m.bin'))!
    const k1 = keys.find((k) => k.includes(':1:m.bin'))!
    // Block 0's slot is left half-way (its key already moved: the old owner answers ASK); block 1's is moved whole (MOVED).
    await migrate(admin, k0, false)
    await migrate(admin, k1, true)
    assert.deepEqual(await (await connectTo(t, b.url)).readFile('m.bin'), data)
    const s = b.server.stats()
    assert.equal(s.sharedHits, 2, `both blocks from Redis: ${JSON.stringify({ hits: s.sharedHits, errors: s.sharedErrors, misses: s.sharedMisses })}`)
    assert.equal(s.diskReads, 0)
  })

  test('the CLI: --redis shares blocks, and stats shows the shared tier', async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'c.bin', MiB + 5)
    const prefix = `t6-${process.pid}:`
    const args = ['--root', root, '--port', '0', '--no-shm', '--settle', '0', '--redis', cluster.nodes[2]!.url, '--redis-prefix', prefix]
    const a = await startServerProcess(t, args)
    const b = await startServerProcess(t, args)
    assert.ok(await poll(() => /sharing blocks through Redis/.test(a.stderr()) && /sharing blocks through Redis/.test(b.stderr()), 10_000), a.stderr() + b.stderr())
    const ra = await runClient(a.url, ['read', 'c.bin'])
    assert.equal(ra.code, 0, ra.stderr)
    assert.deepEqual(ra.stdout, data)
    // Stores do not hold up the read: wait until A's are done.
    for (let i = 0; i < 100; i++) {
      const st = JSON.parse((await runClient(a.url, ['stats', '--json'])).stdout.toString()) as { sharedWrittenBytes: number }
      if (st.sharedWrittenBytes >= data.length) break
      await new Promise((r) => setTimeout(r, 50))
    }
    const rb = await runClient(b.url, ['read', 'c.bin'])
    assert.deepEqual(rb.stdout, data)
    const summary = (await runClient(b.url, ['stats'])).stdout.toString()
    assert.match(summary, /shared {5}Redis up: 2 hits \(1 MiB\), 0 misses, 0 errors/)
    const json = JSON.parse((await runClient(b.url, ['stats', '--json'])).stdout.toString()) as Record<string, unknown>
    assert.equal(json.diskReads, 0)
    assert.equal(json.sharedUp, true)
    await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')])
  })

  test('a master killed mid-read: exact bytes, the server keeps serving, the errors are counted', async (t) => {
    // Its own cluster: this one loses a master.
    const doomed = await startRedisCluster({ masters: 3 })
    t.after(() => doomed.stop())
    const root = tempDir(t)
    const data = writeFile(root, 'big.bin', 24 * MiB)
    const a = await startServer(t, { root, redis: doomed.urls, redisTimeout: 300 })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('big.bin'), data)
    await stored(a.server, data.length)

    // A second server, with a cache smaller than the file, reads it slowly; a master dies on the way.
    const b = await startServer(t, { root, redis: doomed.urls, redisTimeout: 300, cacheSize: 8 * MiB, maxBuffered: 2 * MiB })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    const chunks: Buffer[] = []
    let got = 0
    let killed: Promise<void> | null = null
    for await (const chunk of cb.read('big.bin', { highWaterMark: 256 * 1024 })) {
      chunks.push(chunk as Buffer)
      got += (chunk as Buffer).length
      if (!killed && got >= 4 * MiB) killed = doomed.kill(0)
      if (killed) await new Promise((r) => setTimeout(r, 5))
    }
    await killed
    assert.deepEqual(Buffer.concat(chunks), data, 'exact bytes')
    const s = b.server.stats()
    assert.ok(s.sharedErrors > 0, `errors counted: ${JSON.stringify({ errors: s.sharedErrors, hits: s.sharedHits })}`)
    assert.ok(s.sharedHits > 0, 'blocks before the kill came from Redis')
    assert.ok(s.diskReads > 0, 'blocks on the dead master came from disk')
    // The server is alive and serves again.
    assert.deepEqual(await cb.readFile('big.bin', { offset: 20 * MiB, length: 1000 }), data.subarray(20 * MiB, 20 * MiB + 1000))
  })
})

describe('shared tier failing or absent', { skip }, () => {
  test('Redis absent at start: reads come from disk; once a single instance is up there, it is used', async (t) => {
    const port = await freePort()
    const root = tempDir(t)
    const data = writeFile(root, 'f.bin', MiB + 7)
    const a = await startServer(t, { root, redis: `redis://127.0.0.1:${port}`, redisTimeout: 200 })
    assert.equal(await a.server.sharedReady, false)
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('f.bin'), data)
    assert.equal(a.server.stats().sharedUp, false)
    assert.equal(a.server.stats().sharedSkipped, 2, 'nothing stored while Redis is away')

    const single = await startRedisCluster({ cluster: false, port })
    t.after(() => single.stop())
    await up(a.server)
    const b = await startServer(t, { root, redis: `redis://127.0.0.1:${port}` })
    await up(b.server)
    writeFile(root, 'g.bin', MiB)
    const g = await ca.readFile('g.bin')
    await stored(a.server, g.length)
    assert.deepEqual(await (await connectTo(t, b.url)).readFile('g.bin'), g)
    assert.equal(b.server.stats().sharedHits, 1)
    assert.equal(b.server.stats().diskReads, 0)
  })

  test('a full Redis refuses stores (counted) and keeps answering lookups', async (t) => {
    const single = await startRedisCluster({ cluster: false, maxmemory: '6mb', policy: 'noeviction' })
    t.after(() => single.stop())
    const root = tempDir(t)
    const prefix = `full-${process.pid}:`
    const files = Array.from({ length: 16 }, (_, i) => writeFile(root, `f${i}.bin`, MiB))
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    for (let i = 0; i < files.length; i++) assert.deepEqual(await ca.readFile(`f${i}.bin`), files[i])
    assert.ok(await poll(() => a.server.stats().sharedErrors + a.server.stats().sharedWrittenBytes / MiB + a.server.stats().sharedSkipped >= files.length, 10_000))
    const sa = a.server.stats()
    assert.ok(sa.sharedErrors > 0, 'stores refused for want of memory are counted')
    assert.ok(sa.sharedWrittenBytes >= MiB, 'the first stores fit')
    assert.equal(sa.sharedUp, true, 'a Redis that refuses stores is still up')
    // What it holds is still found.
    const b = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    for (let i = 0; i < files.length; i++) assert.deepEqual(await cb.readFile(`f${i}.bin`), files[i])
    assert.equal(b.server.stats().sharedHits, sa.sharedWrittenBytes / MiB)
  })

  test('a Redis with a password: the URL\'s password gets in; a wrong one is refused and reads come from disk', async (t) => {
    const secret = `pw-${process.pid}`
    const locked = await startRedisCluster({ cluster: false, password: secret })
    t.after(() => locked.stop())
    const { port } = locked.nodes[0]!
    const root = tempDir(t)
    const data = writeFile(root, 'p.bin', MiB + 3)
    const wrong = await startServer(t, { root, redis: `redis://:nope@127.0.0.1:${port}`, redisTimeout: 300 })
    assert.equal(await wrong.server.sharedReady, false, 'a wrong password does not get in')
    assert.deepEqual(await (await connectTo(t, wrong.url)).readFile('p.bin'), data)
    assert.equal(wrong.server.stats().sharedWrittenBytes, 0)
    const [a, b] = await Promise.all([0, 1].map(() => startServer(t, { root, redis: `redis://:${secret}@127.0.0.1:${port}` })))
    await Promise.all([up(a!.server), up(b!.server)])
    assert.deepEqual(await (await connectTo(t, a!.url)).readFile('p.bin'), data)
    await stored(a!.server, data.length)
    assert.deepEqual(await (await connectTo(t, b!.url)).readFile('p.bin'), data)
    assert.equal(b!.server.stats().sharedHits, 2)
    assert.equal(b!.server.stats().diskReads, 0)
  })

  test('a Redis that accepts and never answers costs a bounded wait, then the disk', async (t) => {
    const sockets = new Set<net.Socket>()
    const mute = net.createServer((s) => {
      sockets.add(s)
      s.on('error', () => {})
    })
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()))
    t.after(() => {
      for (const s of sockets) s.destroy()
      mute.close()
    })
    const port = (mute.address() as net.AddressInfo).port
    const root = tempDir(t)
    const data = writeFile(root, 'f.bin', 3 * MiB)
    const a = await startServer(t, { root, redis: `redis://127.0.0.1:${port}`, redisTimeout: 200 })
    assert.equal(await a.server.sharedReady, false, 'a Redis that does not answer is not used')
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('f.bin'), data)
    assert.equal(a.server.stats().sharedHits, 0)
  })
})

async function scanKeys(admin: Cluster, pattern: string): Promise<string[]> {
  const keys: string[] = []
  for (const node of admin.nodes('master')) {
    let cursor = '0'
    do {
      const [next, found] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      keys.push(...found)
    } while (cursor !== '0')
  }
  return keys
}

/** Move `key`'s slot to another master the way redis-cli --cluster reshard does; `finish` false stops after the key moved (ASK). */
async function migrate(admin: Cluster, key: string, finish: boolean): Promise<void> {
  const slot = Number(await admin.cluster('KEYSLOT', key))
  const masters = admin.nodes('master')
  const ids = await Promise.all(masters.map((n) => n.cluster('MYID') as Promise<string>))
  const owners = await Promise.all(masters.map((n) => n.cluster('COUNTKEYSINSLOT', slot) as Promise<number>))
  const from = owners.findIndex((n) => n > 0)
  const to = (from + 1) % masters.length
  const src = masters[from]!
  const dst = masters[to]!
  await dst.cluster('SETSLOT', slot, 'IMPORTING', ids[from]!)
  await src.cluster('SETSLOT', slot, 'MIGRATING', ids[to]!)
  const moving = (await src.cluster('GETKEYSINSLOT', slot, 1000)) as string[]
  await src.migrate(dst.options.host!, dst.options.port!, '', 0, 5000, 'KEYS', ...moving)
  if (!finish) return
  for (const n of masters) await n.cluster('SETSLOT', slot, 'NODE', ids[to]!)
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}
