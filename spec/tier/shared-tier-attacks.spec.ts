/**
 * The shared tier under attack: values of the wrong length, a slow, frozen,
 * dying or lying Redis, a master down, tiny blocks, the store's slots filled
 * from Redis (and adopted after a crash), a full tmpfs, and servers closed
 * with Redis work under way. What must hold throughout:
 * exact bytes, a server that keeps serving and closes within a bound, no
 * store slot or buffered byte left behind, no unhandled rejection.
 */
import assert from 'node:assert/strict'
import { readlinkSync, renameSync, statSync, symlinkSync, utimesSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import { shmNative } from '../../lib/cache/shm-native.js'
import { CacheServer } from '../../lib/server/server.js'
import { encodeBlockValue } from '../../lib/tier/block-value.js'
import { SharedTier } from '../../lib/tier/shared-tier.js'
import { startServerProcess } from '../helpers/cli.js'
import { noSharedMemory, storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { NO_REDIS, type RedisCluster, redisInstalled, startRedisCluster } from '../helpers/redis-cluster.js'
import { connectTo, startServer } from '../helpers/server.js'
import { smallTmpfs } from '../helpers/tmpfs.js'
import { poll, within } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB
const skip = redisInstalled() ? false : NO_REDIS

async function up(server: CacheServer, ms = 8000): Promise<void> {
  assert.ok(await poll(() => server.stats().sharedUp === true, ms), 'the server reaches Redis')
}

async function stored(server: CacheServer, bytes: number): Promise<void> {
  assert.ok(await poll(() => server.stats().sharedWrittenBytes >= bytes, 8000), `stored ${server.stats().sharedWrittenBytes} of ${bytes} bytes`)
}

/**
 * Store slots and buffered bytes: none may be left behind once reads are
 * over. Only cached blocks hold slots (freed a turn after their last holder),
 * and files under 16 KiB keep theirs on the heap.
 */
async function settled(server: CacheServer): Promise<void> {
  const ok = await poll(() => {
    const s = server.stats()
    return s.bufferedBytes === 0 && (s.shm === null || s.shm.blocks <= s.entries)
  }, 3000)
  const s = server.stats()
  assert.ok(ok, `buffered ${s.bufferedBytes} bytes, ${s.shm?.blocks} store slots for ${s.entries} cached blocks`)
}

/** Once everything is evicted, no store slot is held. */
async function slotsFreed(server: CacheServer, evict: () => Promise<unknown>): Promise<void> {
  await evict()
  assert.ok(await poll(() => server.stats().shm?.blocks === 0, 3000), `store slots still held: ${server.stats().shm?.blocks}`)
}

/** Rejections nobody handled while `t` runs. */
function unhandled(t: TestContext): unknown[] {
  const seen: unknown[] = []
  const on = (reason: unknown) => void seen.push(reason)
  process.on('unhandledRejection', on)
  t.after(() => void process.off('unhandledRejection', on))
  return seen
}

function listen(server: net.Server, t: TestContext): Promise<number> {
  const sockets = new Set<net.Socket>()
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('error', () => {})
    s.on('close', () => sockets.delete(s))
  })
  t.after(() => {
    for (const s of sockets) s.destroy()
    return new Promise<void>((r) => server.close(() => r()))
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)))
}

/** Something on a Redis port that answers every chunk it receives with `reply`, whatever was asked. */
function chunkReplier(t: TestContext, reply: Buffer | string): Promise<number> {
  return listen(net.createServer((s) => s.on('data', () => s.write(reply))), t)
}

/** A Redis look-alike that parses each command (RESP arrays) and answers it as `answer` says. */
function fakeRedis(t: TestContext, answer: (cmd: string, args: Buffer[]) => Buffer | string): Promise<number> {
  return listen(
    net.createServer((s) => {
      let buf = Buffer.alloc(0)
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d])
        for (;;) {
          const parsed = parseCommand(buf)
          if (!parsed) return
          buf = buf.subarray(parsed.used)
          s.write(answer(parsed.args[0]!.toString().toUpperCase(), parsed.args.slice(1)))
        }
      })
    }),
    t,
  )
}

function parseCommand(buf: Buffer): { args: Buffer[]; used: number } | null {
  let at = 0
  const line = () => {
    const nl = buf.indexOf('\r\n', at)
    if (nl < 0) return null
    const s = buf.toString('latin1', at, nl)
    at = nl + 2
    return s
  }
  const head = line()
  if (head === null || head[0] !== '*') return null
  const args: Buffer[] = []
  for (let i = 0; i < Number(head.slice(1)); i++) {
    const len = line()
    if (len === null) return null
    const n = Number(len.slice(1))
    if (buf.length < at + n + 2) return null
    args.push(buf.subarray(at, at + n))
    at += n + 2
  }
  return { args, used: at }
}

const bulk = (b: Buffer | string) => Buffer.concat([Buffer.from(`$${Buffer.byteLength(b)}\r\n`), Buffer.from(b), Buffer.from('\r\n')])

/** A TCP relay to `port` whose every chunk, both ways, waits `delay.ms` (in order). */
async function slowRelay(t: TestContext, port: number, delay: { ms: number }): Promise<number> {
  const later = (to: net.Socket) => (d: Buffer) => {
    const timer = setTimeout(() => !to.destroyed && to.write(d), delay.ms)
    timer.unref()
  }
  return listen(
    net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port })
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
      client.on('data', later(upstream))
      upstream.on('data', later(client))
    }),
    t,
  )
}

/** The keys under `prefix` in a single Redis. */
async function keysOf(redis: Redis, prefix: string): Promise<string[]> {
  return redis.keys(`${prefix}*`)
}

describe('shared tier attacks on one Redis', { skip }, () => {
  let single: RedisCluster
  let admin: Redis
  before(async () => {
    single = await startRedisCluster({ cluster: false })
    admin = new Redis({ host: single.nodes[0]!.host, port: single.nodes[0]!.port })
  })
  after(async () => {
    admin?.disconnect()
    await single?.stop()
  })

  test('a value of the wrong length under the right key is refused, counted and deleted; the block comes from disk', async (t) => {
    const root = tempDir(t)
    const prefix = `len-${process.pid}:`
    const data = writeFile(root, 'w.bin', 3 * MiB + 100)
    const small = writeFile(root, 's.bin', 20_000)
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    assert.deepEqual(await ca.readFile('w.bin'), data)
    assert.deepEqual(await ca.readFile('s.bin'), small)
    await stored(a.server, data.length + small.length)
    const keys = await keysOf(admin, prefix)
    const key = (suffix: string) => keys.find((k) => k.endsWith(suffix))!
    // Each value is well formed (magic, its own length, a crc that holds) but of another length than the block.
    await admin.set(key(':0:w.bin'), encodeBlockValue(data.subarray(0, MiB + 1)))
    await admin.set(key(':1:w.bin'), encodeBlockValue(data.subarray(MiB, 2 * MiB - 1)))
    await admin.set(key(':3:w.bin'), encodeBlockValue(Buffer.alloc(0)))
    // The right length, but the header names another one.
    const lying = encodeBlockValue(small)
    lying.writeUInt32LE(small.length - 1, 4)
    await admin.set(key(':0:s.bin'), lying)

    const b = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    assert.deepEqual(await cb.readFile('w.bin'), data)
    assert.deepEqual(await cb.readFile('s.bin'), small)
    const s = b.server.stats()
    assert.equal(s.sharedCorrupt, 4, 'every wrong-length value refused')
    assert.equal(s.sharedHits, 1, 'only the intact block came from Redis')
    assert.ok(s.diskReads >= 4)
    await settled(b.server)
    // Dropped, then stored again from disk with the right length.
    await stored(b.server, 2 * MiB + 100 + small.length)
    assert.equal((await admin.getBuffer(key(':0:w.bin')))!.length, 12 + MiB)
    assert.equal((await admin.getBuffer(key(':3:w.bin')))!.length, 12 + 100)
  })

  test('many readers of the same missing blocks while Redis is slow: one lookup per block, exact bytes, nothing left behind', async (t) => {
    const root = tempDir(t)
    const prefix = `flight-${process.pid}:`
    const data = writeFile(root, 'hot.bin', 3 * MiB + 4321)
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(a.server)
    assert.deepEqual(await (await connectTo(t, a.url)).readFile('hot.bin'), data)
    await stored(a.server, data.length)

    const delay = { ms: 150 }
    const relay = await slowRelay(t, single.nodes[0]!.port, delay)
    const b = await startServer(t, { root, redis: `redis://127.0.0.1:${relay}`, redisPrefix: prefix, redisTimeout: 3000, cacheSize: 64 * MiB })
    await up(b.server)
    const clients = await Promise.all(Array.from({ length: 12 }, () => connectTo(t, b.url)))
    const got = await Promise.all(clients.map((c) => c.readFile('hot.bin')))
    for (const g of got) assert.ok(g.equals(data), 'exact bytes')
    const s = b.server.stats()
    assert.equal(s.sharedHits, 4, 'each block looked up once')
    assert.equal(s.misses, 4, 'one miss per block, the other readers joined it')
    assert.equal(s.diskReads, 0)
    await settled(b.server)
    await slotsFreed(b.server, () => clients[0]!.evict())
  })

  test('Redis frozen past the timeout: the late answers are not taken for later lookups; it is used again once it thaws', async (t) => {
    const own = await startRedisCluster({ cluster: false })
    t.after(() => own.stop())
    const child = own.nodes[0]!.child
    t.after(() => void child.kill('SIGCONT'))
    const root = tempDir(t)
    const files = Array.from({ length: 6 }, (_, i) => writeFile(root, `f${i}.bin`, MiB + i))
    const a = await startServer(t, { root, redis: own.urls })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    for (let i = 0; i < files.length; i++) assert.deepEqual(await ca.readFile(`f${i}.bin`), files[i])
    await stored(a.server, files.reduce((n, f) => n + f.length, 0))

    const b = await startServer(t, { root, redis: own.urls, redisTimeout: 200 })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    child.kill('SIGSTOP')
    // Lookups (GETs) go out and stay unanswered: each times out, the blocks come from disk.
    const frozen = await Promise.all(files.map((_, i) => cb.readFile(`f${i}.bin`)))
    frozen.forEach((g, i) => assert.ok(g.equals(files[i]!), `f${i}.bin exact while Redis is frozen`))
    assert.ok(b.server.stats().sharedErrors > 0)
    child.kill('SIGCONT')
    // The queued answers arrive now; each must go to its own command, not to the next lookup.
    await up(b.server)
    await cb.evict()
    await settled(b.server)
    for (let i = files.length - 1; i >= 0; i--) assert.ok((await cb.readFile(`f${i}.bin`)).equals(files[i]!), `f${i}.bin exact after the thaw`)
    assert.ok(b.server.stats().sharedHits > 0, 'Redis is used again')
    await settled(b.server)
  })

  test('Redis killed with 64 MiB of stores in flight: the rest are skipped, the budget comes back, stores resume on a new Redis', async (t) => {
    const own = await startRedisCluster({ cluster: false })
    const port = own.nodes[0]!.port
    let again: RedisCluster | null = null
    t.after(async () => {
      own.nodes[0]!.child.kill('SIGCONT')
      await own.stop()
      await again?.stop()
    })
    const tier = new SharedTier({ nodes: [{ host: '127.0.0.1', port }], prefix: `inflight-${process.pid}:`, timeoutMs: 5000, maxPending: 64 * MiB })
    t.after(() => tier.close())
    assert.equal(await tier.ready, true)
    own.nodes[0]!.child.kill('SIGSTOP')
    const block = Buffer.alloc(MiB, 7)
    for (let i = 0; i < 80; i++) tier.store(`k${i}`, block)
    assert.equal(tier.stats().sharedSkipped, 16, '64 MiB on their way, the rest skipped')
    await own.kill(0)
    assert.ok(await poll(() => tier.stats().sharedErrors >= 64, 5000), `the stores in flight failed: ${JSON.stringify(tier.stats())}`)
    assert.equal(tier.stats().sharedWrittenBytes, 0)
    again = await startRedisCluster({ cluster: false, port })
    assert.ok(await poll(() => tier.stats().sharedUp, 8000), 'Redis is used again')
    const skipped = tier.stats().sharedSkipped
    for (let i = 0; i < 60; i++) tier.store(`again${i}`, block)
    assert.equal(tier.stats().sharedSkipped, skipped, 'the budget of the failed stores came back')
    assert.ok(await poll(() => tier.stats().sharedWrittenBytes === 60 * MiB, 8000), `stored: ${tier.stats().sharedWrittenBytes}`)
  })

  test('close() while lookups wait on a frozen Redis: bounded, and no unhandled rejection', async (t) => {
    const own = await startRedisCluster({ cluster: false })
    const child = own.nodes[0]!.child
    t.after(async () => {
      child.kill('SIGCONT')
      await own.stop()
    })
    const seen = unhandled(t)
    const root = tempDir(t)
    for (let i = 0; i < 4; i++) writeFile(root, `c${i}.bin`, 2 * MiB)
    const server = await CacheServer.create({ root, settle: 0, redis: own.urls, redisTimeout: 1000 })
    await server.listen('tcp://127.0.0.1:0').then(async (url) => {
      await up(server)
      const client = await connectTo(t, url)
      child.kill('SIGSTOP')
      // Their outcome is not the point: each waits on a lookup when the server closes.
      for (let i = 0; i < 4; i++) client.readFile(`c${i}.bin`).catch(() => {})
      await sleep(100)
      assert.equal(await within(server.close(), 6000), true, 'close() returns within a few timeouts')
    })
    // Past the lookups' timeout: whatever they left settles now.
    await sleep(1500)
    assert.deepEqual(seen, [])
  })
})

describe('shared tier attacks: a Redis that answers garbage', { skip }, () => {
  const replies: [string, Buffer | string][] = [
    ['+OK to everything', '+OK\r\n'],
    ['-ERR to everything', '-ERR no such thing\r\n'],
    ['a bulk "hello" to everything', '$5\r\nhello\r\n'],
    ['an integer to everything', ':1048588\r\n'],
    ['bytes that are not RESP', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a])],
  ]
  for (const [what, reply] of replies) {
    test(`${what}: exact bytes, the server keeps serving and closes`, async (t) => {
      const seen = unhandled(t)
      const port = await chunkReplier(t, reply)
      const root = tempDir(t)
      const big = writeFile(root, 'big.bin', 2 * MiB + 3)
      const small = writeFile(root, 'small.bin', 20)
      const server = await CacheServer.create({ root, settle: 0, redis: `redis://127.0.0.1:${port}`, redisTimeout: 200 })
      const url = await server.listen('tcp://127.0.0.1:0')
      await server.sharedReady
      const client = await connectTo(t, url)
      for (let round = 0; round < 2; round++) {
        assert.ok((await client.readFile('big.bin')).equals(big), `big.bin exact, round ${round}`)
        assert.ok((await client.readFile('small.bin')).equals(small), `small.bin exact, round ${round}`)
        await client.evict()
      }
      assert.equal(server.stats().sharedHits, 0)
      await settled(server)
      assert.equal(await within(server.close(), 5000), true, 'close() is bounded')
      assert.deepEqual(seen, [])
    })
  }

  test('a lookup answered with an array as long as the value should be: the block comes from disk, the read does not fail', async (t) => {
    const seen = unhandled(t)
    const size = 20
    // ioredis hands an array reply to getBuffer's caller as is: one of 12 + size elements has the value's length.
    const array = `*${12 + size}\r\n${':0\r\n'.repeat(12 + size)}`
    const port = await fakeRedis(t, (cmd) =>
      cmd === 'GET' ? array : cmd === 'PING' ? '+PONG\r\n' : cmd === 'INFO' ? bulk('# Cluster\r\ncluster_enabled:0\r\n') : '+OK\r\n',
    )
    const root = tempDir(t)
    const data = writeFile(root, 'tiny.bin', size)
    const { server, url } = await startServer(t, { root, redis: `redis://127.0.0.1:${port}`, redisTimeout: 500 })
    await up(server)
    const client = await connectTo(t, url)
    const got = await client.readFile('tiny.bin').catch((err: Error & { code?: string }) => err)
    assert.ok(Buffer.isBuffer(got), `the read failed: ${(got as Error).message}`)
    assert.deepEqual(got, data)
    assert.deepEqual(seen, [])
  })
})

describe('shared tier attacks on a cluster with a master down', { skip }, () => {
  test('one of 3 masters dies: the others\' blocks are still hits, the dead one\'s come from disk, all exact; the breaker recovers', async (t) => {
    const cluster = await startRedisCluster({ masters: 3 })
    t.after(() => cluster.stop())
    const admin = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })))
    t.after(() => admin.disconnect())
    const root = tempDir(t)
    const prefix = `down-${process.pid}:`
    const files = Array.from({ length: 24 }, (_, i) => writeFile(root, `d${i}.bin`, 64 * KiB + i))
    const a = await startServer(t, { root, redis: cluster.urls, redisPrefix: prefix })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    for (let i = 0; i < files.length; i++) assert.ok((await ca.readFile(`d${i}.bin`)).equals(files[i]!))
    await stored(a.server, files.reduce((n, f) => n + f.length, 0))
    // Which files' blocks live on the master that will die.
    const doomedPort = cluster.nodes[0]!.port
    const doomed = admin.nodes('master').find((n) => n.options.port === doomedPort)!
    const onDoomed = new Set((await doomed.keys(`${prefix}*`)).map((k) => k.slice(k.lastIndexOf(':') + 1)))
    assert.ok(onDoomed.size > 0 && onDoomed.size < files.length, `keys spread: ${onDoomed.size} of ${files.length} on the doomed master`)
    const live = files.map((_, i) => `d${i}.bin`).filter((n) => !onDoomed.has(n))
    const dead = [...onDoomed]
    admin.disconnect()
    await cluster.kill(0)

    const b = await startServer(t, { root, redis: cluster.urls, redisPrefix: prefix, redisTimeout: 300 })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    for (const name of live) assert.ok((await cb.readFile(name)).equals(files[Number(name.slice(1, -4))]!), `${name} exact`)
    assert.equal(b.server.stats().sharedHits, live.length, 'the live masters\' blocks came from Redis')
    for (const name of dead) assert.ok((await cb.readFile(name)).equals(files[Number(name.slice(1, -4))]!), `${name} exact`)
    const s = b.server.stats()
    assert.ok(s.sharedErrors >= Math.min(dead.length, 5), `the dead master's lookups failed: ${s.sharedErrors}`)
    assert.equal(s.sharedHits, live.length)
    // Left alone or not, Redis is asked again, and the live masters serve again.
    await up(b.server, 9000)
    await cb.evict()
    let hits = 0
    for (const name of live) {
      const before = b.server.stats().sharedHits
      assert.ok((await cb.readFile(name)).equals(files[Number(name.slice(1, -4))]!))
      hits += b.server.stats().sharedHits - before
    }
    assert.ok(hits > 0, 'hits from the live masters once the breaker let Redis be asked again')
    await settled(b.server)
  })
})

describe('shared tier attacks: small blocks, empty files, the store', { skip }, () => {
  let single: RedisCluster
  before(async () => {
    single = await startRedisCluster({ cluster: false })
  })
  after(() => single?.stop())

  test('a tiny block size and empty files: every block from Redis on the second server, exact', async (t) => {
    const root = tempDir(t)
    const prefix = `tiny-${process.pid}:`
    const blockSize = 512
    const sizes = [0, 1, 511, 512, 513, 5000, 20_000]
    const files = sizes.map((n, i) => writeFile(root, `t${i}.bin`, n))
    const opts = { root, redis: single.urls, redisPrefix: prefix, blockSize, pageSize: 1024, minPageSize: 512 }
    const a = await startServer(t, opts)
    await up(a.server)
    const ca = await connectTo(t, a.url)
    for (let i = 0; i < files.length; i++) assert.ok((await ca.readFile(`t${i}.bin`)).equals(files[i]!), `t${i}.bin exact`)
    const blocks = sizes.reduce((n, size) => n + Math.ceil(size / blockSize), 0)
    await stored(a.server, sizes.reduce((n, s) => n + s, 0))
    const b = await startServer(t, opts)
    await up(b.server)
    const cb = await connectTo(t, b.url)
    for (let i = 0; i < files.length; i++) assert.ok((await cb.readFile(`t${i}.bin`)).equals(files[i]!), `t${i}.bin exact`)
    const s = b.server.stats()
    assert.equal(s.sharedHits, blocks)
    assert.equal(s.diskReads, 0)
    assert.equal(s.sharedErrors, 0)
    await settled(b.server)
    await slotsFreed(b.server, () => cb.evict())
  })

  test('blocks from Redis fill store slots, are recorded there, and are adopted after a crash', { skip: noSharedMemory(shmNative()) }, async (t) => {
    const root = tempDir(t)
    const prefix = `adopt-${process.pid}:`
    const data = writeFile(root, 'r.bin', 2 * MiB + 20_000)
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(a.server)
    assert.ok((await (await connectTo(t, a.url)).readFile('r.bin')).equals(data))
    await stored(a.server, data.length)
    const dir = storeDir(t)
    const args = ['--root', root, '--port', '0', '--settle', '0', '--cache-size', '64MiB', '--shm-dir', dir]
    const b = await startServerProcess(t, [...args, '--redis', single.urls, '--redis-prefix', prefix])
    assert.ok(await poll(() => /sharing blocks through Redis/.test(b.stderr()), 8000), b.stderr())
    const cb = await connectTo(t, b.url)
    assert.ok((await cb.readFile('r.bin')).equals(data))
    const sb = (await cb.stats()) as unknown as { sharedHits: number; diskReads: number; shm: { blocks: number } }
    assert.equal(sb.sharedHits, 3)
    assert.equal(sb.diskReads, 0)
    assert.equal(sb.shm.blocks, 3, 'each block from Redis in a store slot')
    await cb.close()
    await b.stop('SIGKILL')

    const c = await startServerProcess(t, args)
    assert.match(c.stderr(), /adopted 3 cached blocks/)
    const cc = await connectTo(t, c.url)
    assert.ok((await cc.readFile('r.bin')).equals(data))
    assert.equal(((await cc.stats()) as unknown as { diskReads: number }).diskReads, 0, 'served from the adopted blocks')
    await cc.close()
    assert.equal((await c.stop('SIGTERM')).code, 0)
  })

  test('a block from Redis that finds the store\'s tmpfs full goes to the heap: not a Redis failure, no disk read', async (t) => {
    const tmpfs = smallTmpfs(t)
    if (!tmpfs) return
    const root = tempDir(t)
    const prefix = `enospc-${process.pid}:`
    const blockSize = 64 * KiB
    const first = writeFile(root, 'first.bin', blockSize)
    const data = writeFile(root, 'later.bin', 8 * blockSize)
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix, blockSize, shmDir: false })
    await up(a.server)
    assert.ok((await (await connectTo(t, a.url)).readFile('later.bin')).equals(data))
    await stored(a.server, data.length)

    const shmDir = join(tmpfs.dir, 'store')
    const b = await startServer(t, { root, redis: single.urls, redisPrefix: prefix, blockSize, cacheSize: MiB, maxBuffered: 256 * KiB, shmDir })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    // The slab exists (one block in it); then the tmpfs is filled to the last page.
    assert.ok((await cb.readFile('first.bin')).equals(first))
    assert.equal(b.server.stats().shm?.blocks, 1)
    tmpfs.fill()
    const before = b.server.stats()
    assert.ok((await cb.readFile('later.bin')).equals(data), 'exact bytes')
    const s = b.server.stats()
    assert.equal(s.sharedHits - before.sharedHits, 8, `every block came from Redis: ${JSON.stringify({ hits: s.sharedHits, errors: s.sharedErrors, diskReads: s.diskReads })}`)
    assert.equal(s.diskReads, before.diskReads, 'none from disk')
    assert.equal(s.sharedErrors, 0, 'a full tmpfs is not a Redis error')
    assert.equal(s.sharedUp, true, 'Redis is not left alone for it')
  })
})

describe('shared tier attacks: a file changed around a Redis lookup', { skip }, () => {
  test('rewritten while its blocks are being looked up: one whole version or ECHANGED, and the new version afterwards', async (t) => {
    const single = await startRedisCluster({ cluster: false })
    t.after(() => single.stop())
    const root = tempDir(t)
    const prefix = `race-${process.pid}:`
    const v1 = writeFile(root, 'r.bin', 4 * MiB)
    const when = new Date(Date.now() - 60_000)
    utimesSync(join(root, 'r.bin'), when, when)
    const a = await startServer(t, { root, redis: single.urls, redisPrefix: prefix, cacheSize: 2 * MiB })
    await up(a.server)
    const ca = await connectTo(t, a.url)
    // Blocks 0 and 2 only: the others come from disk, where a change is seen.
    assert.ok((await ca.readFile('r.bin', { offset: 0, length: MiB })).equals(v1.subarray(0, MiB)))
    assert.ok((await ca.readFile('r.bin', { offset: 2 * MiB, length: MiB })).equals(v1.subarray(2 * MiB, 3 * MiB)))
    await stored(a.server, 2 * MiB)

    const delay = { ms: 120 }
    const relay = await slowRelay(t, single.nodes[0]!.port, delay)
    const b = await startServer(t, { root, redis: `redis://127.0.0.1:${relay}`, redisPrefix: prefix, redisTimeout: 3000 })
    await up(b.server)
    const cb = await connectTo(t, b.url)
    const reading = cb.readFile('r.bin').then((b) => b, (err: Error & { code?: string }) => err)
    await sleep(60)
    // Same size, the old mtime: only the ctime tells the versions apart.
    const v2 = writeFile(root, 'r.bin', 4 * MiB)
    utimesSync(join(root, 'r.bin'), when, when)
    const got = await reading
    if (Buffer.isBuffer(got)) assert.ok(got.equals(v1) || got.equals(v2), 'one whole version')
    else assert.equal((got as { code?: string }).code, 'ECHANGED', String(got))
    assert.ok(b.server.stats().sharedHits >= 1, 'block 0 of the old version came from Redis')
    delay.ms = 0
    assert.ok((await cb.readFile('r.bin')).equals(v2), 'the new version afterwards')
    await settled(b.server)
  })
})

describe('shared tier attacks: another file at the same path with the same size, mtime and ctime', { skip }, () => {
  test('a directory swapped for another whose file matches the old one\'s size and times (one real path): the new bytes', async (t) => {
    const single = await startRedisCluster({ cluster: false })
    t.after(() => single.stop())
    const root = tempDir(t)
    const prefix = `dirswap-${process.pid}:`
    // Two releases written in the same tick with the same mtime: only their inodes tell them apart.
    const pair = twoReleases(root, MiB)
    if (!pair) {
      t.skip('this filesystem never gave two files the same ctime')
      return
    }
    const { v1, v2, dir } = pair
    // A rename of the directory leaves its files' ctimes as they were.
    renameSync(join(root, dir, 'v1'), join(root, 'current'))
    const next = `${dir}/v2`
    const { server, url } = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(server)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('current/shard.bin')).equals(v1))
    await stored(server, v1.length)
    renameSync(join(root, 'current'), join(root, 'old'))
    renameSync(join(root, next), join(root, 'current'))
    // Another server: the first one's RAM still holds v1's block under v1's inode, which no longer answers to the path.
    const other = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(other.server)
    const got = await (await connectTo(t, other.url)).readFile('current/shard.bin')
    assert.ok(got.equals(v2), `the new version: ${got.equals(v1) ? 'the old version\'s bytes came from Redis' : 'other bytes'}`)
    assert.equal(other.server.stats().sharedHits, 0, 'no block of the old version under the new one\'s key')
  })

  test('a symlink switched to a new version whose file matches the old one\'s size and times: the new bytes, not the old version\'s from Redis', async (t) => {
    const single = await startRedisCluster({ cluster: false })
    t.after(() => single.stop())
    const root = tempDir(t)
    const prefix = `swap-${process.pid}:`
    // Two releases of a shard of fixed size, written in the same tick with the same mtime (a tar's, say).
    const pair = twoReleases(root, 2 * MiB)
    if (!pair) {
      t.skip('this filesystem never gave two files the same ctime')
      return
    }
    const { v1, v2, dir } = pair
    symlinkSync(`${dir}/v1`, join(root, 'current'))
    const { server, url } = await startServer(t, { root, redis: single.urls, redisPrefix: prefix })
    await up(server)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('current/shard.bin')).equals(v1))
    await stored(server, v1.length)
    // The release switch: the link is replaced, atomically, by one to the new version.
    const target = readlinkSync(join(root, 'current')).replace(/v1$/, 'v2')
    symlinkSync(target, join(root, 'current.new'))
    renameSync(join(root, 'current.new'), join(root, 'current'))
    // A server without the shared tier tells the two apart by their inodes.
    const alone = await startServer(t, { root })
    assert.ok((await (await connectTo(t, alone.url)).readFile('current/shard.bin')).equals(v2), 'without Redis: the new version')
    const got = await client.readFile('current/shard.bin')
    const s = server.stats()
    assert.ok(got.equals(v2), `current/shard.bin is the new version: ${got.equals(v1) ? 'the old version\'s bytes were served' : 'other bytes'} (sharedHits ${s.sharedHits})`)
  })
})

/**
 * DIR/v1/shard.bin and DIR/v2/shard.bin under `root`: two files of `size`
 * random bytes with the same mtime and the same ctime to the nanosecond (made
 * in one tick of the kernel's clock, tried until it happens), different
 * inodes. Null if the filesystem never gave them the same ctime.
 */
function twoReleases(root: string, size: number): { v1: Buffer; v2: Buffer; dir: string } | null {
  for (let attempt = 0; attempt < 50; attempt++) {
    const dir = `r${attempt}`
    const v1 = writeFile(root, `${dir}/v1/shard.bin`, size)
    const v2 = writeFile(root, `${dir}/v2/shard.bin`, size)
    const when = new Date(1_700_000_000_000)
    utimesSync(join(root, dir, 'v1/shard.bin'), when, when)
    utimesSync(join(root, dir, 'v2/shard.bin'), when, when)
    const [s1, s2] = ['v1', 'v2'].map((v) => statSync(join(root, dir, v, 'shard.bin'), { bigint: true }))
    if (s1!.ctimeNs === s2!.ctimeNs && s1!.ino !== s2!.ino) return { v1, v2, dir }
  }
  return null
}
