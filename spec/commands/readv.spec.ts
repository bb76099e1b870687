/**
 * readv: a list of files (and ranges) answered as one stream of entries, in
 * order, errors in their place; repaired byte-exact over a damaging link,
 * NACKs landing anywhere in it, entry boundaries included.
 */
import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Entry, ENTRY_ERROR, ENTRY_FILE, ENTRY_HEADER, EntryDecoder } from '../../lib/protocol/readv-entry.js'
import { countBlockLoads } from '../helpers/block-loads.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'

const KiB = 1024

describe('readv', () => {
  test('answers START, the entries in the order asked (files, ranges, errors), END with the stream length', async (t) => {
    const { server, url, root } = await startServer(t, { blockSize: 64 * KiB })
    const a = writeFile(root, 'a.bin', 200 * KiB + 7)
    const b = writeFile(root, 'd/b.bin', 10)
    writeFile(root, 'empty.bin', Buffer.alloc(0))
    const peer = await rawPeer(t, url)
    const paths = ['a.bin', 'nope.bin', { path: 'a.bin', offset: 70_000, length: 100_000 }, 'd', 'empty.bin', '../x', { path: 'd/b.bin', offset: 11 }, 'd/b.bin']
    peer.send({ id: 5, op: 'readv', paths })
    const end = await peer.done(5)
    const frames = peer.frames.filter((f) => f.id === 5)
    assert.equal(frames[0].type, FrameType.START)
    assert.deepEqual(json(frames[0]), { files: paths.length })
    assert.equal(end.type, FrameType.END)
    const entries: Entry[] = []
    const decoder = new EntryDecoder((e) => entries.push(e))
    let length = 0
    for (const f of frames.filter((f) => f.type === FrameType.DATA)) {
      decoder.push(f.payload)
      length += f.payload.length
    }
    assert.deepEqual(json(end), { files: paths.length, length })
    assert.equal(entries.length, paths.length)
    const error = (e: Entry) => (e.header.kind === ENTRY_ERROR ? JSON.parse(e.body.toString()).code : null)
    assert.deepEqual(entries.map((e) => e.header.index), paths.map((_, i) => i))
    assert.ok(entries[0].body.equals(a))
    assert.equal(entries[0].header.kind, ENTRY_FILE)
    assert.equal(entries[0].header.size, a.length)
    assert.ok(entries[0].header.mtimeMs > 0)
    assert.equal(error(entries[1]), 'ENOENT')
    assert.ok(entries[2].body.equals(a.subarray(70_000, 170_000)), 'a range')
    assert.equal(entries[2].header.size, a.length)
    assert.equal(error(entries[3]), 'EISDIR')
    assert.equal(entries[4].body.length, 0)
    assert.equal(entries[4].header.kind, ENTRY_FILE)
    assert.equal(error(entries[5]), 'EACCES')
    assert.equal(error(entries[6]), 'ERANGE')
    assert.ok(entries[7].body.equals(b))
    // Each file's bytes end their frame: no frame joins the bytes of two entries (a copy on the server).
    let at = 0
    const bodyEnds = new Set(entries.map((e) => (at += ENTRY_HEADER + e.body.length)))
    at = 0
    for (const f of frames.filter((f) => f.type === FrameType.DATA)) {
      for (let b = at + 1; b < at + f.payload.length; b++) assert.ok(!bodyEnds.has(b), `a frame runs across the end of an entry at byte ${b}`)
      at += f.payload.length
    }
    const fileBytes = entries.filter((e) => e.header.kind === ENTRY_FILE).reduce((n, e) => n + e.body.length, 0)
    assert.equal(server.stats().bytesServed, fileBytes, 'bytesServed counts the files\' bytes, not the entries\' headers or errors')
  })

  test('loads the next files while one is sent, so the disk reads of a cold list overlap', async (t) => {
    const { server, url, root } = await startServer(t, { blockSize: 64 * KiB, cacheSize: 64 * 1024 * KiB })
    const files = Array.from({ length: 24 }, (_, i) => writeFile(root, `cold/${i}.bin`, 20 * KiB + 997 * i))
    const loads = countBlockLoads(server)
    const client = await connect(url, { shortCircuit: false })
    t.after(() => client.close())
    let i = 0
    for await (const { data } of client.readMany(files.map((_, k) => `cold/${k}.bin`))) assert.ok(data.equals(files[i++]), `file ${i}`)
    assert.equal(i, files.length)
    assert.ok(loads.most() > 1, `${loads.most()} block loads at once`)
    assert.ok(server.stats().hits > 0, 'files loaded ahead were served from the cache')
  })

  test('refuses a request without a list of paths', async (t) => {
    const { url } = await startServer(t)
    const peer = await rawPeer(t, url)
    for (const [id, paths] of [[1, []], [2, 'a'], [3, [3]], [4, undefined]] as const) {
      peer.send({ id, op: 'readv', paths })
      const f = await peer.done(id)
      assert.equal(f.type, FrameType.ERROR)
      assert.equal(json(f).code, 'EBADREQ')
    }
  })

  test('over a damaging link every entry arrives byte-exact: resends start anywhere in the stream', async (t) => {
    const { url, root } = await startServer(t, { blockSize: 64 * KiB, pageSize: 16 * KiB })
    const data = new Map<string, Buffer>()
    for (let i = 0; i < 150; i++) data.set(`f/${i}.bin`, writeFile(root, `f/${i}.bin`, i % 10 === 0 ? 0 : randomInt(1, 200 * KiB)))
    const paths = [...data.keys(), 'f/missing.bin']
    const client = await connect(url, { faults: { rate: 2e-6, mode: 'mixed', seed: 7 }, progressTimeout: 500 })
    t.after(() => client.close())
    const got: string[] = []
    await assert.rejects(
      (async () => {
        for await (const { path, data: bytes } of client.readMany(paths)) {
          assert.ok(bytes.equals(data.get(path)!), path)
          got.push(path)
        }
      })(),
      { code: 'ENOENT' },
    )
    assert.deepEqual(got, paths.slice(0, -1))
    assert.ok(client.counters().nacks > 0, 'the damage was repaired by resends')
  })
})
