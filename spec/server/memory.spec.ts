import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs'
import { createConnection, type Socket } from 'node:net'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { startServerProcess } from '../helpers/cli.js'
import { tempDir } from '../helpers/fixtures.js'

const MiB = 1024 * 1024
/** The documented bound (README): RSS ≤ 1.05 × cached bytes + 96 MiB. */
const OVERHEAD = 96 * MiB

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  assert.ok(kb, 'VmRSS readable')
  return Number(kb[1]) * 1024
}

/** The README's bound for this many cached bytes. */
function bound(cached: number): number {
  return 1.05 * cached + OVERHEAD
}

/** `count` files of `size` bytes under root (f0, f1, ...), each block-sized piece distinct, cheap to make. */
function bigFiles(root: string, count: number, size: number): void {
  const piece = randomBytes(MiB)
  for (let f = 0; f < count; f++) {
    const fd = openSync(join(root, `f${f}`), 'w')
    for (let off = 0; off < size; off += MiB) {
      piece.writeUInt32BE(f * size + off, 0)
      writeSync(fd, piece, 0, Math.min(MiB, size - off), off)
    }
    closeSync(fd)
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Poll until `check` holds or `ms` pass; the last value seen. */
async function until<T>(ms: number, read: () => T | Promise<T>, check: (v: T) => boolean): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await read()
    if (check(v) || Date.now() > end) return v
    await sleep(100)
  }
}

describe('memory', () => {
  test('server RSS stays within the cache limit plus a bounded overhead with 20,000 cached entries', async (t) => {
    const root = tempDir(t)
    const files = 20_000
    const size = 8 * 1024
    const payload = Buffer.alloc(size, 7)
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(root, `d${d}`))
      for (let i = 0; i < files / 20; i++) writeFileSync(join(root, `d${d}`, `${i}.bin`), payload)
    }
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '256MiB'], { direct: true })
    const client = await connect(server.url)
    t.after(() => client.close())
    const warmed = await client.warm()
    assert.equal(warmed.files, files)
    const stats = await client.stats()
    assert.equal(stats.entries, files)
    assert.equal(stats.cacheBytes, files * size)
    const rss = rssOf(server.child.pid!)
    assert.ok(rss <= bound(stats.cacheBytes), `RSS ${(rss / MiB).toFixed(1)} MiB exceeds ${(bound(stats.cacheBytes) / MiB).toFixed(1)} MiB for ${(stats.cacheBytes / MiB).toFixed(1)} MiB cached`)
    t.diagnostic(`RSS ${(rss / MiB).toFixed(1)} MiB for ${(stats.cacheBytes / MiB).toFixed(1)} MiB in ${stats.entries} entries`)

    // The shebang's malloc setting reached the server (env -S): blocks get mmap()s of their own.
    const env = readFileSync(`/proc/${server.child.pid}/environ`, 'utf8').split('\0')
    assert.ok(env.includes('GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072'), 'mmap threshold in the server environment')
  })

  test('a fresh server caching large files stays within the bound, and gives the memory back when they are evicted', async (t) => {
    const root = tempDir(t)
    bigFiles(root, 6, 64 * MiB)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '512MiB', '--settle', '0'], { direct: true })
    const client = await connect(server.url)
    t.after(() => client.close())
    const start = rssOf(server.child.pid!)
    await client.warm()
    const stats = await client.stats()
    assert.equal(stats.cacheBytes, 6 * 64 * MiB)
    const rss = rssOf(server.child.pid!)
    t.diagnostic(`RSS ${(rss / MiB).toFixed(1)} MiB for ${(stats.cacheBytes / MiB).toFixed(0)} MiB cached (started at ${(start / MiB).toFixed(1)})`)
    assert.ok(rss <= bound(stats.cacheBytes), `RSS ${(rss / MiB).toFixed(1)} MiB exceeds ${(bound(stats.cacheBytes) / MiB).toFixed(1)} MiB`)

    await client.evict()
    const after = await until(5000, () => rssOf(server.child.pid!), (v) => v <= start + 32 * MiB)
    t.diagnostic(`RSS ${(after / MiB).toFixed(1)} MiB after evicting everything`)
    assert.ok(after <= start + 32 * MiB, `RSS ${(after / MiB).toFixed(1)} MiB after evicting everything, started at ${(start / MiB).toFixed(1)}`)
  })

  test('clients that ask for big files and never read cannot push RSS over the bound, and leave nothing held', async (t) => {
    const root = tempDir(t)
    bigFiles(root, 4, 64 * MiB)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '64MiB', '--settle', '0'], { direct: true })
    const port = Number(new URL(server.url).port)
    const pid = server.child.pid!
    const sockets: Socket[] = []
    t.after(() => {
      for (const s of sockets) s.destroy()
    })
    for (let i = 0; i < 60; i++) {
      const s = createConnection(port, '127.0.0.1')
      s.on('error', () => {})
      s.pause() // never reads a byte
      sockets.push(s)
      let lines = ''
      for (let j = 1; j <= 8; j++) {
        // Whole and unaligned ranges, so pages straddle blocks too.
        lines += JSON.stringify({ id: j, op: 'read', path: `f${(i + j) % 4}`, offset: ((i * 7 + j * 13) % 48) * MiB + (j % 2) * 100, length: 16 * MiB }) + '\n'
      }
      s.write(lines)
    }
    const client = await connect(server.url)
    t.after(() => client.close())
    let peak = 0
    let cached = 0
    for (let n = 0; n < 30; n++) {
      await sleep(200)
      peak = Math.max(peak, rssOf(pid))
      cached = Math.max(cached, (await client.stats()).cacheBytes)
    }
    const stats = await client.stats()
    t.diagnostic(`peak RSS ${(peak / MiB).toFixed(1)} MiB, ${stats.stalledClosed} stalled connections closed, ${(stats.bufferedBytes / MiB).toFixed(1)} of ${(stats.bufferedLimit / MiB).toFixed(1)} MiB buffered`)
    assert.ok(peak <= bound(cached), `peak RSS ${(peak / MiB).toFixed(1)} MiB exceeds ${(bound(cached) / MiB).toFixed(1)} MiB`)
    assert.ok(stats.stalledClosed > 0, 'connections that stopped reading were closed')

    // A reader is served meanwhile, byte-exact.
    const got = await client.readFile('f1', { offset: 5 * MiB + 17, length: 4096 })
    const fd = openSync(join(root, 'f1'), 'r')
    const want = Buffer.alloc(4096)
    readSync(fd, want, 0, 4096, 5 * MiB + 17)
    closeSync(fd)
    assert.ok(got.equals(want), 'a reading client gets the right bytes')

    for (const s of sockets) s.destroy()
    const left = await until(5000, () => client.stats(), (s) => s.connections === 1 && s.bufferedBytes === 0)
    assert.equal(left.connections, 1)
    assert.equal(left.bufferedBytes, 0, 'nothing held outside the cache once they are gone')
    const after = await until(5000, () => rssOf(pid), (v) => v <= bound(left.cacheBytes))
    assert.ok(after <= bound(left.cacheBytes), `RSS ${(after / MiB).toFixed(1)} MiB after the clients left`)
  })
})
