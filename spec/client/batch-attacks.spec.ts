/**
 * Attacks on the readv batches (read-batches.ts, Client.readEntries and
 * readMany) and on tar's read-ahead window (cli/tar.ts): hangs, bounds,
 * order, errors, early exits, dying connections. Every wait is bounded: a
 * hang fails its test instead of blocking the run.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Writable } from 'node:stream'
import type net from 'node:net'
import { type Client, connect } from '../../lib/client/client.js'
import type { BatchEntry, BatchItem } from '../../lib/client/read-batches.js'
import { writeTar } from '../../lib/cli/tar.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { loopbackProxy } from '../helpers/proxy.js'
import { poll } from '../helpers/wait.js'
import { tcpInFlightMax } from '../helpers/socket-buffers.js'

/** `p`, or a rejection naming `what` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms)))
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** Every entry, or the error and the entries before it. */
async function collect(entries: AsyncIterable<BatchEntry>): Promise<{ got: BatchEntry[]; err: unknown }> {
  const got: BatchEntry[] = []
  try {
    for await (const e of entries) got.push(e)
  } catch (err) {
    return { got, err }
  }
  return { got, err: null }
}

async function shortClient(t: { after(fn: () => unknown): void }, url: string, opts: Parameters<typeof connect>[1] = {}): Promise<Client> {
  const client = await connect(url, { shortCircuit: false, ...opts })
  t.after(() => client.close())
  return client
}

const code = (err: unknown) => (err as { code?: string } | null)?.code

/** Members of a tar stream: name and bytes (ustar, sizes in octal). */
function untar(buf: Buffer): { name: string; data: Buffer }[] {
  const out: { name: string; data: Buffer }[] = []
  for (let at = 0; at + 512 <= buf.length; ) {
    const h = buf.subarray(at, at + 512)
    if (h.every((b) => b === 0)) break
    const field = (from: number, len: number) => h.subarray(from, from + len).toString('latin1').replace(/\0.*$/s, '')
    const prefix = field(345, 155)
    const name = (prefix ? `${prefix}/` : '') + field(0, 100)
    const size = parseInt(field(124, 12).trim() || '0', 8)
    out.push({ name, data: buf.subarray(at + 512, at + 512 + size) })
    at += 512 + Math.ceil(size / 512) * 512
  }
  return out
}

function collector(): { sink: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk)
      cb()
    },
  })
  return { sink, bytes: () => Buffer.concat(chunks) }
}

describe('readEntries attacks', () => {
  test('an empty list, sync or async, ends at once with nothing', async (t) => {
    const { url } = await startServer(t)
    const client = await shortClient(t, url)
    async function* none(): AsyncGenerator<string> {}
    for (const items of [[], none(), new Set<string>()]) {
      const { got, err } = await bounded(collect(client.readEntries(items)), 5000, 'empty list')
      assert.equal(err, null)
      assert.deepEqual(got, [])
    }
    assert.equal(client.pending, 0)
  })

  test('a sync source that throws after some items: those items first, then its error', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.bin', 10)
    writeFile(root, 'b.bin', 20)
    const client = await shortClient(t, url)
    function* items() {
      yield 'a.bin'
      yield 'b.bin'
      throw new Error('the list broke')
    }
    const { got, err } = await bounded(collect(client.readEntries(items())), 5000, 'sync source that throws')
    assert.match((err as Error | null)?.message ?? '', /the list broke/)
    assert.deepEqual(
      got.map((g) => g.path),
      ['a.bin', 'b.bin'],
    )
  })

  test('an async source that throws after some items: those items first, then its error', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.bin', 10)
    writeFile(root, 'b.bin', 20)
    const client = await shortClient(t, url)
    async function* items() {
      yield 'a.bin'
      yield 'b.bin'
      throw new Error('the list broke')
    }
    const { got, err } = await bounded(collect(client.readEntries(items())), 5000, 'async source that throws')
    assert.match((err as Error | null)?.message ?? '', /the list broke/)
    assert.deepEqual(
      got.map((g) => g.path),
      ['a.bin', 'b.bin'],
    )
  })

  for (const batch of [-1, Number.NaN]) {
    test(`batch ${batch} is refused or read, not a generator that never ends`, async (t) => {
      const { url, root } = await startServer(t)
      const a = writeFile(root, 'a.bin', 10)
      const client = await shortClient(t, url)
      const { got, err } = await bounded(collect(client.readEntries(['a.bin'], { batch })), 3000, `batch ${batch}`)
      if (err) assert.equal(code(err), 'EBADREQ')
      else assert.deepEqual(got.map((g) => g.data), [a])
    })
  }

  test('highWater -1 is refused or read, not a connection held for good', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 4 }, (_, i) => writeFile(root, `h/${i}.bin`, 100_000))
    const client = await shortClient(t, url)
    const { got, err } = await bounded(collect(client.readEntries(files.map((_, i) => `h/${i}.bin`), { highWater: -1 })), 3000, 'highWater -1')
    if (err) assert.equal(code(err), 'EBADREQ')
    else assert.deepEqual(got.map((g) => g.data), files)
  })

  test('highWater 0: each entry holds the connection until taken, and every entry still comes, in order', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 30 }, (_, i) => writeFile(root, `z/${i}.bin`, 50_000 + i))
    const client = await shortClient(t, url)
    const { got, err } = await bounded(collect(client.readEntries(files.map((_, i) => `z/${i}.bin`), { batch: 4, highWater: 0 })), 10_000, 'highWater 0')
    assert.equal(err, null)
    assert.deepEqual(got.map((g) => g.data), files)
    assert.equal(client.pending, 0)
  })

  // Two readv batches are on their way at once, and the server may interleave their frames: whole
  // entries of the second may arrive while the consumer still waits for one of the first. Holding
  // the connection for those would keep that entry out for good.
  test('readMany with its default highWater: a 48 MiB file then 520 files of 256 KiB all come, in order', async (t) => {
    const { url, root } = await startServer(t)
    const big = writeFile(root, 'big.bin', 48 * 1024 * 1024)
    const small = Array.from({ length: 520 }, (_, i) => writeFile(root, `s/${i}.bin`, 256 * 1024))
    const client = await shortClient(t, url)
    const paths = ['big.bin', ...small.map((_, i) => `s/${i}.bin`)]
    let n = 0
    await bounded(
      (async () => {
        for await (const { path, data } of client.readMany(paths)) {
          assert.equal(path, paths[n])
          assert.ok(data.equals(n === 0 ? big : small[n - 1]), path)
          n++
        }
      })(),
      30_000,
      `big head, small tail (${n} taken)`,
    )
    assert.equal(n, paths.length)
  })

  test('a big first file and small ones after it, two one-item batches, a small highWater: every entry comes, in order', async (t) => {
    const { url, root } = await startServer(t)
    const big = writeFile(root, 'big.bin', 24 * 1024 * 1024)
    const small = Array.from({ length: 40 }, (_, i) => writeFile(root, `s/${i}.bin`, 64 * 1024))
    const client = await shortClient(t, url)
    const items = ['big.bin', ...small.map((_, i) => `s/${i}.bin`)]
    const { got, err } = await bounded(collect(client.readEntries(items, { batch: 1, highWater: 128 * 1024 })), 20_000, 'big head, small tail')
    assert.equal(err, null)
    assert.deepEqual(
      got.map((g) => g.path),
      items,
    )
    assert.ok(got[0].data.equals(big))
    for (let i = 0; i < small.length; i++) assert.ok(got[i + 1].data.equals(small[i]))
  })

  test('duplicate paths and overlapping ranges of one file come back in order, each its own bytes', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 10_000)
    const client = await shortClient(t, url)
    const items: (string | BatchItem)[] = ['a.bin', { path: 'a.bin', offset: 5, length: 10 }, 'a.bin', { path: 'a.bin', offset: 9_995, length: 100 }, { path: 'a.bin', offset: 0, length: 0 }, { path: 'a.bin', offset: 10_000 }]
    const { got, err } = await bounded(collect(client.readEntries(items, { batch: 2 })), 5000, 'duplicates')
    assert.equal(err, null)
    assert.deepEqual(
      got.map((g) => g.data),
      [a, a.subarray(5, 15), a, a.subarray(9_995), Buffer.alloc(0), Buffer.alloc(0)],
    )
    for (const g of got) assert.equal(g.size, 10_000)
  })

  test('a list of 100,000 paths (a lazy generator) comes back whole and in order', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 50 }, (_, i) => writeFile(root, `k/${i}.bin`, i))
    const client = await shortClient(t, url)
    let pulled = 0
    function* paths() {
      for (let i = 0; i < 100_000; i++) {
        pulled++
        yield `k/${(i * 7) % 50}.bin`
      }
    }
    let n = 0
    await bounded(
      (async () => {
        for await (const { path, data } of client.readMany(paths())) {
          const want = (n * 7) % 50
          assert.equal(path, `k/${want}.bin`)
          assert.ok(data.equals(files[want]), path)
          n++
        }
      })(),
      60_000,
      '100,000 paths',
    )
    assert.equal(n, 100_000)
    assert.equal(pulled, 100_000)
    assert.equal(client.pending, 0)
  })

  test('a consumer that breaks out early leaves no request running, and the connection serves the next read', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 600 }, (_, i) => writeFile(root, `e/${i}.bin`, 30_000))
    const client = await shortClient(t, url)
    let n = 0
    await bounded(
      (async () => {
        for await (const e of client.readEntries(files.map((_, i) => `e/${i}.bin`), { batch: 600, highWater: 256 * 1024 })) {
          assert.ok(e.data.equals(files[n]))
          if (++n === 70) break // one batch (nothing to interleave with), the connection held
        }
      })(),
      10_000,
      'early break',
    )
    assert.ok(await poll(() => client.pending === 0, 5000), `requests left: ${client.pending}`)
    const again = await bounded(client.readFile('e/599.bin'), 5000, 'read after the break')
    assert.ok(again.equals(files[599]))
  })

  test('client.close() mid-way: the consumer gets ECLOSED promptly, not a hang', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 300 }, (_, i) => writeFile(root, `c/${i}.bin`, 40_000))
    const client = await connect(url, { shortCircuit: false })
    let n = 0
    const run = (async () => {
      for await (const _ of client.readEntries(files.map((_, i) => `c/${i}.bin`), { batch: 300, highWater: 256 * 1024 })) {
        if (++n === 10) void client.close()
      }
    })()
    const err = await bounded(
      run.then(
        () => null,
        (e: unknown) => e,
      ),
      5000,
      'close mid-way',
    )
    assert.equal(code(err), 'ECLOSED')
    assert.ok(n < 300)
  })

  test('the connection cut mid-batch, twice: the rest is asked for again, every entry once, byte-exact and in order', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 200 }, (_, i) => writeFile(root, `r/${i}.bin`, 10_000 + i * 37))
    let connections = 0
    const proxied = await loopbackProxy(t, url, (upstream: net.Socket, downstream: net.Socket) => {
      const which = ++connections
      let sent = 0
      upstream.on('data', (chunk: Buffer) => {
        sent += chunk.length
        // The first two connections die after half a megabyte: inside a batch's entries.
        if (which <= 2 && sent > 512 * 1024) {
          downstream.destroy()
          upstream.destroy()
          return
        }
        downstream.write(chunk)
      })
    })
    const client = await shortClient(t, proxied, { retryDelays: [20, 20, 20, 20] })
    const { got, err } = await bounded(collect(client.readEntries(files.map((_, i) => `r/${i}.bin`), { batch: 16 })), 15_000, 'cut mid-batch')
    assert.equal(err, null)
    assert.equal(got.length, files.length)
    for (let i = 0; i < files.length; i++) {
      assert.equal(got[i].path, `r/${i}.bin`)
      assert.ok(got[i].data.equals(files[i]), got[i].path)
    }
    assert.ok(connections >= 3, `connections: ${connections}`)
  })

  test('a connection that keeps dying: the batch fails with ECLOSED after the retries, not a hang', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 50 }, (_, i) => writeFile(root, `d/${i}.bin`, 100_000))
    const proxied = await loopbackProxy(t, url, (upstream: net.Socket, downstream: net.Socket) => {
      let sent = 0
      upstream.on('data', (chunk: Buffer) => {
        sent += chunk.length
        if (sent > 300) {
          // HELLO through, then nothing: cut in the first entry, each time
          downstream.destroy()
          upstream.destroy()
          return
        }
        downstream.write(chunk)
      })
    })
    const client = await connect(proxied, { shortCircuit: false, retryDelays: [10, 10, 10] }).catch((e: unknown) => e as Error)
    if (client instanceof Error) return // the HELLO itself did not fit: nothing to say about batches
    t.after(() => client.close())
    const { err } = await bounded(collect(client.readEntries(files.map((_, i) => `d/${i}.bin`), { batch: 8 })), 15_000, 'dying connection')
    assert.ok(err, 'an error, not a quiet end')
  })

  test('a path whose request line is too long for the server fails at its place, the files before it delivered', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 10)
    const client = await shortClient(t, url, { retryDelays: [10] })
    const { got, err } = await bounded(collect(client.readEntries(['a.bin', `x/${'y'.repeat(70_000)}`])), 10_000, 'too long a path')
    assert.ok(err, 'the long path fails')
    assert.deepEqual(
      got.map((g) => g.data),
      [a],
    )
  })

  test('readMany holds the connection past its highWater: a consumer that stops taking stops the bytes coming to it', async (t) => {
    const { url, root } = await startServer(t)
    const MiB = 1024 * 1024
    const n = 160 // 160 MiB asked for, 32 MiB highWater
    for (let i = 0; i < n; i++) writeFile(root, `m/${i}.bin`, MiB)
    let forwarded = 0
    const proxied = await loopbackProxy(t, url, (upstream: net.Socket, downstream: net.Socket) => {
      upstream.on('data', (c: Buffer) => (forwarded += c.length))
      upstream.pipe(downstream) // with its backpressure: what the client does not read stays upstream
    })
    const client = await shortClient(t, proxied)
    const it = client.readMany(Array.from({ length: n }, (_, i) => `m/${i}.bin`))[Symbol.asyncIterator]()
    const first = await bounded(it.next(), 10_000, 'first entry')
    assert.equal(first.done, false)
    // Stop taking: let the server run as far as it will.
    await new Promise((r) => setTimeout(r, 1500))
    const before = forwarded
    await new Promise((r) => setTimeout(r, 500))
    // 32 MiB of entries held by the client, what the proxy-to-client connection holds in the
    // kernel (autotuned up to its sysctl maxima), and a few MiB of frames on their way: well short
    // of the 160 MiB a client that never holds would take.
    const bound = 32 * MiB + tcpInFlightMax() + 8 * MiB
    assert.ok(forwarded < bound, `bytes sent to the client while its consumer stopped: ${forwarded} (bound ${bound})`)
    assert.equal(forwarded, before, 'the bytes stopped')
    await bounded(it.return!(), 5000, 'return')
    assert.ok(await poll(() => client.pending === 0, 5000))
  })
})

describe('tar read-ahead attacks', () => {
  test('an empty list makes an archive with just the manifest', async (t) => {
    const { url } = await startServer(t)
    const client = await shortClient(t, url)
    const { sink, bytes } = collector()
    await bounded(writeTar(client, [], sink), 5000, 'empty tar')
    const members = untar(bytes())
    assert.deepEqual(
      members.map((m) => m.name),
      ['.cacheserv-manifest.json'],
    )
    assert.match(members[0].data.toString(), /"files":0/)
  })

  test('a slow sink: the server sends no more than the 64 MiB window and a file ahead of it', async (t) => {
    const { url, root } = await startServer(t)
    const MiB = 1024 * 1024
    const n = 200 // 200 MiB of 1 MiB files, sizes unknown (a --list)
    for (let i = 0; i < n; i++) writeFile(root, `w/${i}.bin`, MiB - 1)
    const client = await shortClient(t, url)
    const watcher = await shortClient(t, url)
    let release: (() => void) | null = null
    const sink = new Writable({
      highWaterMark: 16 * 1024,
      write(_chunk: Buffer, _enc, cb) {
        release = cb // never called while the test looks: the archive waits
      },
    })
    const done = writeTar(client, Array.from({ length: n }, (_, i) => ({ path: `w/${i}.bin` })), sink).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 2000))
    const s1 = (await watcher.stats()) as unknown as { bytesServed: number }
    await new Promise((r) => setTimeout(r, 500))
    const s2 = (await watcher.stats()) as unknown as { bytesServed: number }
    assert.ok(s2.bytesServed <= 64 * MiB + 2 * MiB, `served while the sink is stuck: ${s2.bytesServed}`)
    assert.equal(s1.bytesServed, s2.bytesServed, 'the window stopped the fetching')
    void release
    sink.destroy(new Error('stop'))
    await bounded(done, 10_000, 'tar after its sink died')
    assert.ok(await poll(() => client.pending === 0, 5000), `requests left: ${client.pending}`)
  })

  test('a missing file mid-list fails with ENOENT, and no request is left running on the connection', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 400 }, (_, i) => writeFile(root, `f/${i}.bin`, 5000))
    const client = await shortClient(t, url)
    const list = files.map((_, i) => ({ path: i === 150 ? 'f/missing.bin' : `f/${i}.bin` }))
    const { sink, bytes } = collector()
    const err = await bounded(
      writeTar(client, list, sink).then(
        () => null,
        (e: unknown) => e,
      ),
      10_000,
      'tar with a missing file',
    )
    assert.equal(code(err), 'ENOENT')
    const members = untar(bytes())
    assert.equal(members.filter((m) => m.name.startsWith('f/')).length, 150)
    assert.ok(await poll(() => client.pending === 0, 5000), `requests left: ${client.pending}`)
    assert.ok((await bounded(client.readFile('f/399.bin'), 5000, 'read after')).equals(files[399]))
  })

  test('a --list that gives two paths and then never ends: their members come out, and a stop lets go of everything', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 3000)
    const b = writeFile(root, 'b.bin', 2 * 1024 * 1024) // over the probe: streamed
    const client = await shortClient(t, url)
    let stuck: (() => void) | null = null
    async function* list() {
      yield { path: 'a.bin' }
      yield { path: 'b.bin' }
      await new Promise<void>((r) => (stuck = r))
    }
    const chunks: Buffer[] = []
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk)
        cb()
      },
    })
    const done = writeTar(client, list(), sink).catch((e: unknown) => e)
    const want = 512 + 3072 + 512 + b.length
    assert.ok(await poll(() => chunks.reduce((n, c) => n + c.length, 0) >= want, 10_000), 'both members out before the list ends')
    const members = untar(Buffer.concat(chunks))
    assert.ok(members[0].data.equals(a))
    assert.ok(members[1].data.equals(b))
    // The last bytes of b.bin can reach the sink a moment before its END is taken off the socket.
    assert.ok(await poll(() => client.pending === 0, 5000), `in flight while the list waits: ${client.pending}`)
    sink.destroy(new Error('stop'))
    ;(stuck as (() => void) | null)?.()
    await bounded(done, 5000, 'tar after a stop')
  })

  test('duplicate paths, sizes known and not, small and over the probe, all byte-exact in order', async (t) => {
    const { url, root } = await startServer(t)
    const s = writeFile(root, 's.bin', 700)
    const m = writeFile(root, 'm.bin', 1024 * 1024 + 1)
    const p = writeFile(root, 'p.bin', 1024 * 1024) // exactly the probe
    const client = await shortClient(t, url)
    const list = [{ path: 's.bin' }, { path: 'm.bin' }, { path: 's.bin', size: 700 }, { path: 'p.bin' }, { path: 'm.bin', size: m.length }, { path: 'm.bin' }, { path: 'p.bin' }]
    const want = [s, m, s, p, m, m, p]
    const { sink, bytes } = collector()
    await bounded(writeTar(client, list, sink, { manifest: false }), 10_000, 'duplicates')
    const members = untar(bytes())
    assert.deepEqual(
      members.map((x) => x.name),
      list.map((l) => l.path),
    )
    for (let i = 0; i < want.length; i++) assert.ok(members[i].data.equals(want[i]), `member ${i}`)
  })

  test('a file that shrank since it was listed fails with ECHANGED', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.bin', 1000)
    writeFile(root, 'b.bin', 500)
    const client = await shortClient(t, url)
    const { sink } = collector()
    const err = await bounded(
      writeTar(client, [{ path: 'a.bin', size: 1000 }, { path: 'b.bin', size: 800 }], sink).then(
        () => null,
        (e: unknown) => e,
      ),
      5000,
      'shrunk',
    )
    assert.equal(code(err), 'ECHANGED')
  })

  test('client.close() mid-archive: writeTar fails promptly', async (t) => {
    const { url, root } = await startServer(t)
    const files = Array.from({ length: 300 }, (_, i) => writeFile(root, `c/${i}.bin`, 60_000))
    writeFile(root, 'big.bin', 20 * 1024 * 1024)
    const client = await connect(url, { shortCircuit: false })
    let written = 0
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length
        if (written > 1024 * 1024) void client.close()
        setImmediate(cb)
      },
    })
    const list = [...files.slice(0, 100).map((_, i) => ({ path: `c/${i}.bin` })), { path: 'big.bin', size: 20 * 1024 * 1024 }, ...files.slice(100).map((_, i) => ({ path: `c/${i + 100}.bin` }))]
    const err = await bounded(
      writeTar(client, list, sink).then(
        () => null,
        (e: unknown) => e,
      ),
      10_000,
      'tar after close',
    )
    assert.equal(code(err), 'ECLOSED')
  })
})
