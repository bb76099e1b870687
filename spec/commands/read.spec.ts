/**
 * The `read` command: START with the range and the file's version, the
 * bytes, END; byte-exact over a server whatever the size and checksum,
 * ranges clipped at the end of the file, an offset past it ERANGE; a file
 * read lately whose blocks are cached served without opening it; a resend
 * from the receiver's verified point, of the same version or ECHANGED.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { BlockLease } from '../../lib/cache/block-lease.js'
import type { CommandIO } from '../../lib/commands/context.js'
import { read } from '../../lib/commands/read.js'
import { openFile } from '../../lib/fs/open-file.js'
import type { Part } from '../../lib/stages/items.js'
import { collect, commandContext, dataOf } from '../helpers/command-context.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const PAGE = 256 * 1024
const MiB = 1024 * 1024
const BLOCK = 4096

for (const checksum of ['crc32', 'md5'] as const) {
  describe(`byte-exact reads over TCP (${checksum})`, () => {
    const sizes: Record<string, number> = {
      empty: 0,
      'one byte': 1,
      'exactly one page': PAGE,
      'one page and one byte': PAGE + 1,
      'one block exactly': MiB,
      'many pages, odd size': 3 * MiB + 17,
      'larger than the cache': 5 * MiB + 3,
    }
    for (const [name, size] of Object.entries(sizes)) {
      test(`reads a file: ${name} (${size} bytes)`, async (t) => {
        const { url, root } = await startServer(t, { checksum, cacheSize: 2 * MiB })
        const data = writeFile(root, 'f.bin', size)
        const client = await connectTo(t, url)
        assert.equal(client.hello.checksum, checksum)
        const got = await client.readFile('f.bin')
        assert.equal(got.length, size)
        assert.ok(got.equals(data))
      })
    }
  })
}

describe('ranges', () => {
  const size = 2 * MiB + 1000
  const cases: [string, number, number | undefined, number, number][] = [
    // name, offset, length, expected start, expected end
    ['an empty range at 0', 0, 0, 0, 0],
    ['the first byte', 0, 1, 0, 1],
    ['the last byte', size - 1, 1, size - 1, size],
    ['a range across a block boundary', MiB - 5, 10, MiB - 5, MiB + 5],
    ['a range ending on a block boundary', MiB - 100, 100, MiB - 100, MiB],
    ['a range starting on a block boundary', MiB, PAGE + 3, MiB, MiB + PAGE + 3],
    ['a length past the end, clipped', size - 10, 1000, size - 10, size],
    ['from an offset to the end', 12345, undefined, 12345, size],
    ['at offset == size, empty', size, undefined, size, size],
  ]
  for (const [name, offset, length, from, to] of cases) {
    test(`reads ${name}`, async (t) => {
      const { url, root } = await startServer(t)
      const data = writeFile(root, 'r.bin', size)
      const client = await connectTo(t, url)
      const stream = client.read('r.bin', { offset, length })
      const chunks: Buffer[] = []
      for await (const c of stream) chunks.push(c as Buffer)
      assert.ok(Buffer.concat(chunks).equals(data.subarray(from, to)))
      assert.deepEqual({ size: stream.info!.size, offset: stream.info!.offset, length: stream.info!.length }, { size, offset, length: to - from })
    })
  }

  test('refuses an offset beyond the end with ERANGE', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'r.bin', 10)
    const client = await connectTo(t, url)
    await assert.rejects(client.readFile('r.bin', { offset: 11 }), { code: 'ERANGE' })
  })
})

describe('the cache', () => {
  test('serves a second read from RAM without touching the disk', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 16 * MiB })
    const data = writeFile(root, 'hot.bin', 3 * MiB + 5)
    const client = await connectTo(t, url)
    assert.ok((await client.readFile('hot.bin')).equals(data))
    const afterFirst = server.stats()
    assert.ok(afterFirst.diskReads >= 4)
    assert.ok((await client.readFile('hot.bin')).equals(data))
    const afterSecond = server.stats()
    assert.equal(afterSecond.diskReads, afterFirst.diskReads, 'no disk read on the second pass')
    assert.equal(afterSecond.hitBytes - afterFirst.hitBytes, data.length)
    assert.equal((await client.stat('hot.bin')).cached, true)
  })

  test('never serves a file replaced on disk from the old cached blocks', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'v.bin', 2 * MiB)
    const client = await connectTo(t, url)
    await client.readFile('v.bin')
    const v2 = writeFile(root, 'v.bin', 2 * MiB)
    assert.ok((await client.readFile('v.bin')).equals(v2))
  })
})

describe('errors', () => {
  test('answers ENOENT, EISDIR and ENOTDIR', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'sub/f.txt', 'x')
    const client = await connectTo(t, url)
    await assert.rejects(client.readFile('nope.bin'), { code: 'ENOENT' })
    await assert.rejects(client.readFile('sub'), { code: 'EISDIR' })
    await assert.rejects(client.readFile('sub/f.txt/x'), { code: 'ENOTDIR' })
  })
})

/** The key of the version of `path` on disk now. */
async function versionOf(ctx: Parameters<typeof read>[1], path: string): Promise<string> {
  const file = await openFile(ctx.jail, path)
  await file.fh.close()
  return file.key
}

const run = (ctx: Parameters<typeof read>[1], args: Record<string, unknown>, io: CommandIO = {}) => collect(read(args, ctx, io))
const kinds = (parts: Part[]) => [...new Set(parts.map((p) => p.kind))]

describe('the read command on a server\'s command context', () => {
  test('START gives the range and names the version it serves (not sent), then its bytes, then END with the length', async (t) => {
    const { ctx, data } = await commandContext(t, { 'f.bin': 3 * BLOCK + 7 })
    const parts = await run(ctx, { path: 'f.bin', offset: 10, length: 5000 })
    const [start] = parts
    assert.ok(start.kind === 'start')
    assert.deepEqual(Object.keys(start.body as object), ['size', 'offset', 'length', 'mtimeMs'])
    assert.deepEqual({ ...(start.body as object), mtimeMs: 0 }, { size: 3 * BLOCK + 7, offset: 10, length: 5000, mtimeMs: 0 })
    assert.equal(start.identity, await versionOf(ctx, 'f.bin'))
    assert.ok(dataOf(parts).equals(data['f.bin'].subarray(10, 5010)))
    assert.deepEqual(parts.at(-1), { kind: 'end', body: { length: 5000 } })
  })

  test('bad arguments are EBADREQ naming the argument', async (t) => {
    const { ctx } = await commandContext(t, { 'f.bin': 10 })
    await assert.rejects(run(ctx, {}), { code: 'EBADREQ', message: /missing "path"/ })
    for (const [name, value] of [['offset', -1], ['offset', 1.5], ['length', 'x'], ['length', -3]]) {
      await assert.rejects(run(ctx, { path: 'f.bin', [name]: value }), { code: 'EBADREQ', message: new RegExp(`"${name}" must be a non-negative integer`) }, `${name} ${value}`)
    }
  })

  test('an offset past the end is ERANGE naming both, cached or not; at the end, a read of nothing', async (t) => {
    const { ctx } = await commandContext(t, { 'f.bin': 10 })
    const erange = { code: 'ERANGE', message: 'offset 11 is beyond the end of f.bin (10 bytes)' }
    await assert.rejects(run(ctx, { path: 'f.bin', offset: 11 }), erange)
    await run(ctx, { path: 'f.bin' })
    await assert.rejects(run(ctx, { path: 'f.bin', offset: 11 }), erange)
    const empty = await run(ctx, { path: 'f.bin', offset: 10 })
    assert.deepEqual(kinds(empty), ['start', 'end'])
    assert.deepEqual(empty.at(-1), { kind: 'end', body: { length: 0 } })
    assert.equal(ctx.files.hits, 1, 'the empty read went the cached way')
  })

  test('a file read lately whose blocks are all cached is served without opening it; once it changes, it is opened again', async (t) => {
    const { ctx, root, data } = await commandContext(t, { 'f.bin': 2 * BLOCK + 1 })
    assert.ok(dataOf(await run(ctx, { path: 'f.bin' })).equals(data['f.bin']))
    assert.equal(ctx.files.hits, 0)
    assert.ok(dataOf(await run(ctx, { path: 'f.bin', offset: 5 })).equals(data['f.bin'].subarray(5)))
    assert.equal(ctx.files.hits, 1)
    const next = Buffer.alloc(BLOCK, 7)
    writeFileSync(join(root, 'f.bin'), next)
    assert.ok(dataOf(await run(ctx, { path: 'f.bin' })).equals(next), 'the new version, not the cached blocks')
    assert.equal(ctx.files.hits, 1)
  })

  test('a range over more than 16 cached blocks goes the full way: the cached way pins no more than 16 at once', async (t) => {
    const { ctx, data } = await commandContext(t, { 'f.bin': 20 * BLOCK })
    await run(ctx, { path: 'f.bin' })
    assert.ok(dataOf(await run(ctx, { path: 'f.bin' })).equals(data['f.bin']))
    assert.equal(ctx.files.hits, 0)
    assert.ok(dataOf(await run(ctx, { path: 'f.bin', offset: BLOCK, length: 16 * BLOCK })).equals(data['f.bin'].subarray(BLOCK, 17 * BLOCK)))
    assert.equal(ctx.files.hits, 1)
  })

  test('cached blocks are leased at once, shown to hold(), and given back when the response ends or is left early', async (t) => {
    const { ctx } = await commandContext(t, { 'f.bin': 3 * BLOCK })
    await run(ctx, { path: 'f.bin' })
    const held: BlockLease[] = []
    const hold = (lease: unknown) => void held.push(lease as BlockLease)
    await run(ctx, { path: 'f.bin' }, { hold })
    assert.equal(ctx.files.hits, 1)
    assert.ok(held.length >= 3 && held.every((l) => l.released), `${held.filter((l) => !l.released).length} of ${held.length} leases kept`)
    held.length = 0
    const gen = read({ path: 'f.bin' }, ctx, { hold })
    assert.equal((await gen.next()).value?.kind, 'start')
    assert.equal(held.length, 3, 'every block leased before the first part')
    await gen.return()
    assert.ok(held.every((l) => l.released), 'a response left after START gives its blocks back')
  })

  test('a resend from a verified point sends only the bytes after it, without START; END still gives the whole length', async (t) => {
    const { ctx, data } = await commandContext(t, { 'f.bin': 3 * BLOCK })
    const identity = await versionOf(ctx, 'f.bin')
    for (let round = 0; round < 2; round++) {
      // Round 0 opens the file, round 1 serves it from the cache.
      const parts = await run(ctx, { path: 'f.bin', offset: 100, length: 9000 }, { resume: { seq: 4, offset: 2500, identity } })
      assert.deepEqual(kinds(parts), ['data', 'end'])
      assert.ok(dataOf(parts).equals(data['f.bin'].subarray(2600, 9100)))
      assert.deepEqual(parts.at(-1), { kind: 'end', body: { length: 9000 } })
    }
    const again = await run(ctx, { path: 'f.bin' }, { resume: { seq: 0, offset: 0, identity } })
    assert.deepEqual(kinds(again), ['start', 'data', 'end'], 'a resend from seq 0 (START lost) starts with START')
  })

  test('a resend of another version of the file is ECHANGED, cached or not', async (t) => {
    const { ctx } = await commandContext(t, { 'f.bin': 2 * BLOCK })
    const resume = { seq: 1, offset: 0, identity: 'another version' }
    await assert.rejects(run(ctx, { path: 'f.bin' }, { resume }), { code: 'ECHANGED', message: /f\.bin changed on disk while it was being read/ })
    await run(ctx, { path: 'f.bin' })
    await assert.rejects(run(ctx, { path: 'f.bin' }, { resume }), { code: 'ECHANGED' })
  })

  test('a resend from past the end of the range is EBADREQ', async (t) => {
    const { ctx } = await commandContext(t, { 'f.bin': 2 * BLOCK })
    const identity = await versionOf(ctx, 'f.bin')
    for (let round = 0; round < 2; round++) {
      await assert.rejects(run(ctx, { path: 'f.bin', offset: 10, length: 100 }, { resume: { seq: 2, offset: 101, identity } }), {
        code: 'EBADREQ',
        message: 'cannot resume f.bin at byte 111: the read ends at byte 110',
      })
      await run(ctx, { path: 'f.bin' })
    }
  })
})
