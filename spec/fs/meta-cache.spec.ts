/**
 * The metadata cache end to end: listings answered from memory, never from
 * before a change that finished (the request goes out right after the
 * change, with no wait), bounded, filled by warm; and the streamed tree's
 * wire form, resends included.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { linkSync, mkdirSync, renameSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { type Client, connect, type TreeFile } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'

async function tree(client: Client, path = '', pageSize?: number): Promise<TreeFile[]> {
  const out: TreeFile[] = []
  for await (const f of client.tree(path, pageSize === undefined ? {} : { pageSize })) out.push(f)
  return out
}

/** rel → size, as the tree shows it. */
async function sizes(client: Client, path = ''): Promise<Record<string, number>> {
  return Object.fromEntries((await tree(client, path)).map((f) => [f.path, f.size]))
}

function dataOf(frames: ReceivedFrame[], id: number, epoch: number): Buffer {
  return Buffer.concat(frames.filter((f) => f.id === id && f.type === FrameType.DATA && f.epoch === epoch).map((f) => f.payload))
}

describe('the metadata cache', () => {
  test('an unchanged tree is listed again from memory, with the same answer', async (t) => {
    const { server, url, root } = await startServer(t)
    for (let d = 0; d < 5; d++) for (let f = 0; f < 20; f++) writeFile(root, `d${d}/f${f}.bin`, d * 20 + f)
    const client = await connectTo(t, url)
    const first = await tree(client)
    const ls = await client.ls('d3', { long: true })
    const before = server.stats()
    assert.deepEqual(await tree(client), first)
    assert.deepEqual(await tree(client, '', 7), first, 'pages too')
    assert.deepEqual(await client.ls('d3', { long: true }), ls)
    const after = server.stats()
    assert.equal(after.metaMisses, before.metaMisses, 'no directory was read again')
    assert.ok(after.metaHits > before.metaHits)
    assert.ok(after.metaDirs >= 6 && after.metaBytes > 0)
  })

  test('a server without it reads every directory each time, and answers the same', async (t) => {
    const root = tempDir(t)
    for (let f = 0; f < 30; f++) writeFile(root, `d/f${f}.bin`, f)
    const plain = await startServer(t, { root, metaCache: false })
    const held = await startServer(t, { root })
    const [a, b] = [await connectTo(t, plain.url), await connectTo(t, held.url)]
    assert.deepEqual(await tree(a), await tree(b))
    assert.deepEqual(await a.ls('d', { long: true }), await b.ls('d', { long: true }))
    assert.equal(plain.server.stats().metaHits, 0)
    assert.equal(plain.server.stats().metaBytes, 0)
  })

  test('sizes written in place are seen by the very next listing, round after round', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a/x.bin', 1)
    writeFile(root, 'a/y.bin', 2)
    const client = await connectTo(t, url)
    await tree(client)
    for (let round = 0; round < 200; round++) {
      const size = (round * 7919) % 4099
      if (round % 4 === 3) truncateSync(join(root, 'a', 'x.bin'), size)
      else writeFileSync(join(root, 'a', 'x.bin'), Buffer.alloc(size, round))
      const how = round % 3
      if (how === 0) assert.equal((await sizes(client))['a/x.bin'], size, `round ${round}, streamed tree`)
      else if (how === 1) assert.equal((await tree(client, 'a', 1)).find((f) => f.path === 'a/x.bin')?.size, size, `round ${round}, pages`)
      else assert.equal((await client.ls('a', { long: true })).find((e) => e.name === 'x.bin')?.size, size, `round ${round}, ls --long`)
    }
  })

  test('files and directories added, removed, renamed or swapped are seen at once', async (t) => {
    const { url, root } = await startServer(t)
    const outside = tempDir(t)
    writeFile(outside, 'secret.bin', 50)
    writeFile(root, 'a/x.bin', 3)
    writeFile(root, 'b/y.bin', 4)
    writeFile(root, 'c/z.bin', 5)
    const client = await connectTo(t, url)
    const check = async (want: Record<string, number>, what: string) => assert.deepEqual(await sizes(client), want, what)
    await check({ 'a/x.bin': 3, 'b/y.bin': 4, 'c/z.bin': 5 }, 'at first')
    writeFile(root, 'a/new.bin', 6)
    await check({ 'a/new.bin': 6, 'a/x.bin': 3, 'b/y.bin': 4, 'c/z.bin': 5 }, 'a file added')
    unlinkSync(join(root, 'a', 'new.bin'))
    renameSync(join(root, 'a', 'x.bin'), join(root, 'a', 'w.bin'))
    await check({ 'a/w.bin': 3, 'b/y.bin': 4, 'c/z.bin': 5 }, 'removed, renamed in place')
    renameSync(join(root, 'a', 'w.bin'), join(root, 'b', 'w.bin'))
    await check({ 'b/w.bin': 3, 'b/y.bin': 4, 'c/z.bin': 5 }, 'moved to another directory')
    renameSync(join(root, 'b'), join(root, 'e'))
    await check({ 'c/z.bin': 5, 'e/w.bin': 3, 'e/y.bin': 4 }, 'a directory renamed')
    rmSync(join(root, 'e'), { recursive: true })
    writeFile(root, 'e/other.bin', 9)
    await check({ 'c/z.bin': 5, 'e/other.bin': 9 }, 'a directory removed, another made under its name')
    rmSync(join(root, 'e'), { recursive: true })
    symlinkSync('c', join(root, 'e'))
    // Each directory is walked once: under the root it is c; asked for as e, it is listed as e.
    await check({ 'c/z.bin': 5 }, 'a directory swapped for a symlink inside the root')
    assert.deepEqual(await sizes(client, 'e'), { 'e/z.bin': 5 })
    unlinkSync(join(root, 'e'))
    symlinkSync(outside, join(root, 'e'))
    await check({ 'c/z.bin': 5 }, 'a symlink to outside the root is never listed')
    assert.deepEqual(await client.ls(''), [
      { name: 'a', type: 'dir' },
      { name: 'c', type: 'dir' },
    ])
    unlinkSync(join(root, 'c', 'z.bin'))
    symlinkSync(join(outside, 'secret.bin'), join(root, 'c', 'z.bin'))
    await check({}, 'a file swapped for a symlink out of the root')
    await assert.rejects(client.stat('c/z.bin'), { code: 'EACCES' })
  })

  test('a file with a second name elsewhere: a write through that name is seen too', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a/x.bin', 10)
    mkdirSync(join(root, 'b'))
    linkSync(join(root, 'a', 'x.bin'), join(root, 'b', 'x.bin'))
    const client = await connectTo(t, url)
    assert.deepEqual(await sizes(client, 'a'), { 'a/x.bin': 10 })
    for (const size of [20, 5, 300]) {
      // Reported by inotify in b/ only: a/ must not be answered from memory.
      writeFileSync(join(root, 'b', 'x.bin'), Buffer.alloc(size))
      assert.deepEqual(await sizes(client, 'a'), { 'a/x.bin': size })
      assert.equal((await client.ls('a', { long: true }))[0].size, size)
      assert.equal((await client.stat('a/x.bin')).size, size)
    }
  })

  test('a filesystem mounted on a held directory, and unmounted, is seen by the very next listing', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'm/under.bin', 7)
    writeFile(root, 'z.bin', 1)
    const client = await connectTo(t, url)
    assert.deepEqual(await sizes(client), { 'm/under.bin': 7, 'z.bin': 1 })
    const at = join(root, 'm')
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', at], { stdio: 'pipe' })
    } catch (err) {
      return t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]})`)
    }
    try {
      // inotify says nothing of a mount: the held listings of m/ and of the root are of what it covers.
      assert.deepEqual(await sizes(client), { 'z.bin': 1 }, 'the empty tmpfs hides m/under.bin')
      assert.deepEqual(await client.ls('m'), [])
    } finally {
      execFileSync('umount', [at])
    }
    assert.deepEqual(await sizes(client), { 'm/under.bin': 7, 'z.bin': 1 }, 'unmounted, it shows again')
  })

  test('it holds at most an eighth of the cache size, taken out of the blocks', async (t) => {
    const cacheSize = 1024 * 1024
    const { server, url, root } = await startServer(t, { cacheSize, blockSize: 64 * 1024 })
    for (let d = 0; d < 40; d++) for (let f = 0; f < 60; f++) writeFile(root, `dir-${d}/file-with-a-longish-name-${f}.bin`, 700)
    const client = await connectTo(t, url)
    assert.equal((await tree(client)).length, 2400)
    const s = server.stats()
    assert.ok(s.metaBytes > 0 && s.metaBytes <= cacheSize / 8, `metaBytes ${s.metaBytes}`)
    await client.warm('')
    const w = server.stats()
    assert.ok(w.cacheBytes + w.metaBytes <= cacheSize, `cacheBytes ${w.cacheBytes} + metaBytes ${w.metaBytes} > ${cacheSize}`)
    assert.equal((await tree(client)).length, 2400, 'what is let go is read again')
  })

  test("stat of a directory after a file was made in it gives its mtime now (its parent's watch does not hear of it)", async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a/sub/f.bin', 1)
    utimesSync(join(root, 'a', 'sub'), 1_000_000, 1_000_000)
    const client = await connectTo(t, url)
    await tree(client)
    assert.equal((await client.stat('a/sub')).mtimeMs, 1_000_000_000)
    writeFile(root, 'a/sub/g.bin', 1)
    assert.equal((await client.stat('a/sub')).mtimeMs, Number(statSync(join(root, 'a', 'sub'), { bigint: true }).mtimeMs))
  })

  test('pinned blocks and listings together stay within the cache size, whichever comes first', async (t) => {
    const cacheSize = 1024 * 1024
    const blockSize = 16 * 1024
    const { server, url, root } = await startServer(t, { cacheSize, blockSize })
    for (let d = 0; d < 60; d++) for (let f = 0; f < 40; f++) writeFile(root, `listed/dir-${d}/a-file-with-a-long-name-${f}.bin`, 0)
    writeFile(root, 'pinned.bin', cacheSize - 2 * blockSize) // the most a pin may take
    const client = await connectTo(t, url)
    await tree(client, 'listed')
    assert.ok(server.stats().metaBytes > cacheSize / 16, 'setup: listings held')
    await client.pin('pinned.bin')
    assert.equal((await tree(client, 'listed')).length, 2400)
    const s = server.stats()
    assert.equal(s.pinnedBytes, cacheSize - 2 * blockSize)
    assert.ok(s.cacheBytes + s.metaBytes <= cacheSize, `cacheBytes ${s.cacheBytes} + metaBytes ${s.metaBytes} > ${cacheSize}`)
  })

  test('warm fills it: a tree after a warm reads no directory', async (t) => {
    const { server, url, root } = await startServer(t)
    for (let d = 0; d < 4; d++) for (let f = 0; f < 10; f++) writeFile(root, `d${d}/s/f${f}.bin`, 100)
    const client = await connectTo(t, url)
    await client.warm('')
    const misses = server.stats().metaMisses
    assert.equal((await tree(client)).length, 40)
    assert.equal(server.stats().metaMisses, misses)
  })
})

describe('the streamed tree on the wire', () => {
  async function served(t: Parameters<typeof startServer>[0], files: number) {
    const { url, root } = await startServer(t, { pageSize: 16 * 1024 })
    for (let i = 0; i < files; i++) writeFile(root, `d${i % 10}/f${String(i).padStart(5, '0')}.bin`, i % 97)
    return { url, root }
  }

  test('START {}, DATA lines, END {files, bytes, length}; limit with stream is refused', async (t) => {
    const { url } = await served(t, 3000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', stream: true })
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.END)
    const frames = peer.frames.filter((f) => f.id === 1)
    assert.equal(frames[0].type, FrameType.START)
    assert.deepEqual(json(frames[0]), {})
    const data = dataOf(peer.frames, 1, 0)
    const text = data.toString()
    assert.ok(text.endsWith('\n'))
    const lines = text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as TreeFile)
    assert.equal(lines.length, 3000)
    const { files, bytes, length } = json(end)
    assert.deepEqual([files, bytes, length], [3000, lines.reduce((n, f) => n + f.size, 0), data.length])
    peer.send({ id: 2, op: 'tree', stream: true, limit: 10 })
    assert.equal(json(await peer.done(2)).code, 'EBADREQ')
  })

  test('a NACK gets the same bytes again from its offset; after the tree changed, ECHANGED and no mixed bytes', async (t) => {
    const { url, root } = await served(t, 3000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', stream: true })
    await peer.done(1)
    const whole = dataOf(peer.frames, 1, 0)
    const dataFrames = peer.frames.filter((f) => f.id === 1 && f.type === FrameType.DATA)
    assert.ok(dataFrames.length > 4, `${dataFrames.length} frames`)
    // As a receiver that holds the first two DATA frames would ask.
    const offset = dataFrames[0].payload.length + dataFrames[1].payload.length
    peer.send({ id: 1, op: 'nack', seq: dataFrames[2].seq, offset, resync: 1 })
    await peer.until((fs) => fs.some((f) => f.id === 1 && f.epoch === 1 && (f.type === FrameType.END || f.type === FrameType.ERROR)))
    assert.ok(dataOf(peer.frames, 1, 1).equals(whole.subarray(offset)), 'the resend continues the same stream')
    // A file that sorts first: the walk made again differs before the receiver's offset.
    writeFile(root, 'a-first/0.bin', 1)
    peer.send({ id: 1, op: 'nack', seq: dataFrames[2].seq, offset, resync: 2 })
    await peer.until((fs) => fs.some((f) => f.id === 1 && f.epoch === 2 && (f.type === FrameType.END || f.type === FrameType.ERROR)))
    const last = peer.frames.filter((f) => f.id === 1 && f.epoch === 2)
    assert.equal(last.at(-1)!.type, FrameType.ERROR)
    assert.equal(json(last.at(-1)!).code, 'ECHANGED')
    assert.equal(dataOf(peer.frames, 1, 2).length, 0, 'nothing of the new listing was sent as the old one')
  })

  test('a NACK from past where the listing made again ends: ECHANGED, not a shorter END', async (t) => {
    const { url, root } = await served(t, 3000)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', stream: true })
    await peer.done(1)
    const whole = dataOf(peer.frames, 1, 0)
    const text = whole.toString()
    const dataFrames = peer.frames.filter((f) => f.id === 1 && f.type === FrameType.DATA)
    const last = dataFrames.at(-1)!
    const offset = whole.length - last.payload.length
    // Every file after the first 64 KiB goes: the walk made again ends before the receiver's offset.
    const keep = text.indexOf('\n', 65_536 - 1) + 1
    assert.ok(keep > 0 && keep < offset, 'setup')
    for (const line of text.slice(keep).trimEnd().split('\n')) unlinkSync(join(root, (JSON.parse(line) as TreeFile).path))
    peer.send({ id: 1, op: 'nack', seq: last.seq, offset, resync: 1 })
    await peer.until((fs) => fs.some((f) => f.id === 1 && f.epoch === 1 && (f.type === FrameType.END || f.type === FrameType.ERROR)))
    const end = peer.frames.filter((f) => f.id === 1 && f.epoch === 1).at(-1)!
    assert.equal(end.type, FrameType.ERROR)
    assert.equal(json(end).code, 'ECHANGED')
  })

  test('through a damaging link the Node client gets every line exactly', async (t) => {
    const { url } = await served(t, 5000)
    const plain = await connectTo(t, url)
    const want = await tree(plain)
    const client = await connect(url, { faults: { rate: 2e-5, mode: 'mixed', seed: 11 }, progressTimeout: 300 })
    t.after(() => client.close())
    assert.deepEqual(await tree(client), want)
    assert.ok(client.counters().nacks > 0, 'the damage was repaired by resends')
  })
})
