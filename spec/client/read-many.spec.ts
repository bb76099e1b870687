/**
 * Client.readMany end to end: many files pipelined over one connection,
 * yielded in the order asked, byte-exact.
 */
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { describe, test } from 'node:test'
import { type Client, connect } from '../../lib/client/client.js'
import { shmNative } from '../../lib/cache/shm-native.js'
import { noSharedMemory, writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { within } from '../helpers/wait.js'

/** `count` small files of random sizes (some empty) under many/, in a shuffled order. */
function makeFiles(root: string, count: number): { paths: string[]; data: Map<string, Buffer> } {
  const data = new Map<string, Buffer>()
  for (let i = 0; i < count; i++) {
    const rel = `many/${String(i).padStart(4, '0')}.bin`
    data.set(rel, writeFile(root, rel, i % 50 === 0 ? 0 : randomInt(1, 4000)))
  }
  // Not sorted: the order given, not the order on disk, is the order yielded.
  const paths = [...data.keys()]
  for (let i = paths.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1)
    ;[paths[i], paths[j]] = [paths[j], paths[i]]
  }
  return { paths, data }
}

/** Drain readMany; returns what was yielded and the error, if any. */
async function drain(client: Client, paths: string[], inFlight: number): Promise<{ got: { path: string; data: Buffer }[]; err: unknown }> {
  const got: { path: string; data: Buffer }[] = []
  try {
    for await (const item of client.readMany(paths, { inFlight })) got.push(item)
  } catch (err) {
    return { got, err }
  }
  return { got, err: null }
}

// Each case on the server's host (locate and shared memory, for the files it places there) and over the socket (readv).
for (const shortCircuit of [true, false]) describe(`readMany (${shortCircuit ? 'short-circuit' : 'over the socket'})`, () => {
  const connectTo = async (t: Parameters<typeof startServer>[0], url: string) => {
    const client = await connect(url, { shortCircuit })
    t.after(() => client.close())
    return client
  }

  for (const inFlight of [8, 1]) {
    test(`yields 500 files byte-exact, in the order given (inFlight ${inFlight})`, async (t) => {
      const { url, root } = await startServer(t)
      const { paths, data } = makeFiles(root, 500)
      const client = await connectTo(t, url)
      const { got, err } = await drain(client, paths, inFlight)
      assert.equal(err, null)
      assert.deepEqual(
        got.map((g) => g.path),
        paths,
      )
      for (const g of got) assert.ok(g.data.equals(data.get(g.path)!), g.path)
      assert.equal(client.pending, 0, 'no request left behind')
    })
  }

  test('the same path may appear more than once', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 100)
    const b = writeFile(root, 'b.bin', 200)
    const client = await connectTo(t, url)
    const { got, err } = await drain(client, ['a.bin', 'b.bin', 'a.bin', 'a.bin'], 3)
    assert.equal(err, null)
    assert.deepEqual(
      got.map((g) => g.data),
      [a, b, a, a],
    )
  })

  test('inFlight below 1 (or not an integer) rejects with EBADREQ rather than yielding nothing', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    for (const inFlight of [0, -1, 1.5, Number.NaN]) {
      const { got, err } = await drain(client, ['a.bin'], inFlight)
      assert.deepEqual(got, [])
      assert.equal((err as NodeJS.ErrnoException | null)?.code, 'EBADREQ', `inFlight ${inFlight}`)
    }
  })

  test('an empty list yields nothing', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const { got, err } = await drain(client, [], 8)
    assert.equal(err, null)
    assert.deepEqual(got, [])
  })

  for (const inFlight of [8, 1]) {
    test(`a missing file rejects at its position, after the files before it (inFlight ${inFlight})`, async (t) => {
      const { url, root } = await startServer(t)
      const { paths, data } = makeFiles(root, 40)
      const asked = [...paths.slice(0, 20), 'many/missing.bin', ...paths.slice(20)]
      const client = await connectTo(t, url)
      const { got, err } = await drain(client, asked, inFlight)
      assert.equal((err as { code?: string } | null)?.code, 'ENOENT')
      assert.deepEqual(
        got.map((g) => g.path),
        paths.slice(0, 20),
      )
      for (const g of got) assert.ok(g.data.equals(data.get(g.path)!), g.path)
      // The connection is still good after the failure.
      assert.ok((await client.readFile(paths[30])).equals(data.get(paths[30])!))
    })
  }

  test('a path leaving the root rejects with EACCES at its position', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 10)
    const client = await connectTo(t, url)
    const { got, err } = await drain(client, ['a.bin', '../x', 'a.bin'], 8)
    assert.equal((err as { code?: string } | null)?.code, 'EACCES')
    assert.equal(got.length, 1)
    assert.ok(got[0].data.equals(a))
  })

})

describe('readMany over the socket', () => {
  test('long paths go out in batches whose request lines the server takes', async (t) => {
    const { url, root } = await startServer(t)
    const dir = 'd'.repeat(200) + '/' + 'e'.repeat(200)
    const data = Array.from({ length: 400 }, (_, i) => writeFile(root, `${dir}/${String(i).padStart(200, '0')}.bin`, 10 + i))
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    let i = 0
    for await (const { data: bytes } of client.readMany(data.map((_, k) => `${dir}/${String(k).padStart(200, '0')}.bin`))) assert.ok(bytes.equals(data[i++]))
    assert.equal(i, data.length)
  })
})

describe('readMany over the socket, left early', () => {
  test('a consumer that stops while the connection is held for its entries leaves the connection working', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 256 * 1024 * 1024 })
    const big = Array.from({ length: 40 }, (_, i) => writeFile(root, `big/${i}.bin`, 2 * 1024 * 1024 + i))
    const small = writeFile(root, 'small.bin', 100)
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    for await (const { data } of client.readMany(big.map((_, i) => `big/${i}.bin`))) {
      assert.ok(data.equals(big[0]))
      // More than 32 MiB of entries arrive untaken meanwhile: the client holds the connection.
      await new Promise((r) => setTimeout(r, 300))
      break
    }
    assert.equal(await within(client.readFile('small.bin').then((d) => assert.ok(d.equals(small))), 5000), true, 'a read after it is answered')
  })
})

describe('readEntries', () => {
  test('ranges clipped at the end of their files, each with its file\'s size and mtime', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 10_000)
    const b = writeFile(root, 'b.bin', 300)
    const client = await connect(url)
    t.after(() => client.close())
    const got = []
    for await (const e of client.readEntries([{ path: 'a.bin', offset: 100, length: 50 }, 'b.bin', { path: 'b.bin', length: 1000 }, { path: 'a.bin', offset: 9_990 }])) got.push(e)
    assert.deepEqual(
      got.map((e) => [e.path, e.size, e.data]),
      [
        ['a.bin', 10_000, a.subarray(100, 150)],
        ['b.bin', 300, b],
        ['b.bin', 300, b],
        ['a.bin', 10_000, a.subarray(9_990)],
      ],
    )
    const { statSync } = await import('node:fs')
    assert.equal(got[0]!.mtimeMs, Math.floor(statSync(`${root}/a.bin`).mtimeMs))
  })

  test('an async source that makes it wait: the items at hand go out at once, the rest as they come', async (t) => {
    const { url, root } = await startServer(t)
    for (let i = 0; i < 6; i++) writeFile(root, `f${i}.bin`, 100 + i)
    const client = await connect(url)
    t.after(() => client.close())
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    async function* items() {
      yield 'f0.bin'
      yield 'f1.bin'
      await gate // the rest of the list is not written yet
      for (let i = 2; i < 6; i++) yield `f${i}.bin`
    }
    const entries = client.readEntries(items())
    const next = entries.next()
    assert.ok(await within(next, 5000), 'the first entry came before the list went on')
    assert.equal((await next).value?.path, 'f0.bin')
    release()
    const rest: string[] = []
    for await (const e of entries) rest.push(e.path)
    assert.deepEqual(rest, ['f1.bin', 'f2.bin', 'f3.bin', 'f4.bin', 'f5.bin'])
  })

  test('a source that throws ends the entries with its error, after the items before it', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'x.bin', 10)
    const client = await connect(url)
    t.after(() => client.close())
    async function* items() {
      yield 'x.bin'
      await new Promise((resolve) => setTimeout(resolve, 20))
      throw new Error('the list broke')
    }
    const got: string[] = []
    await assert.rejects(async () => {
      for await (const e of client.readEntries(items())) got.push(e.path)
    }, /the list broke/)
    assert.deepEqual(got, ['x.bin'])
  })
})

describe('what the server counts of reads on its host', { skip: noSharedMemory(shmNative()) }, () => {
  test('files given in shared memory count as locatedBytes, not bytesServed, and hits plus misses add up to both', async (t) => {
    const { url, root, server } = await startServer(t)
    const files = Array.from({ length: 20 }, (_, i) => writeFile(root, `f/${i}.bin`, 20_000 + i * 1000))
    const total = files.reduce((n, f) => n + f.length, 0)
    const client = await connect(url)
    t.after(() => client.close())
    for (let round = 0; round < 2; round++) {
      let i = 0
      for await (const { data } of client.readMany(files.map((_, k) => `f/${k}.bin`))) assert.ok(data.equals(files[i++]!))
    }
    const s = server.stats()
    assert.equal(s.locatedBytes, 2 * total, 'both rounds were located')
    assert.ok(s.bytesServed < total / 10, `${s.bytesServed} bytes went over the socket`)
    assert.equal(s.hitBytes + s.missBytes, s.bytesServed + s.locatedBytes)
    const summary = await client.stats()
    assert.equal(summary.locatedBytes, 2 * total)
  })
})
