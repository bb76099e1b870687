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
