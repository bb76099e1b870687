/**
 * `tree` end to end: every file under a directory with its size, in walk
 * order, a page at a time, within the root.
 */
import assert from 'node:assert/strict'
import { symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Client, TreeFile } from '../../lib/client/client.js'
import { TreeLines } from '../../lib/client/tree-stream.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'

/** rel → size. Walk order: segment by segment, so "a/z" comes before "a.b" and "a-1". */
const FILES: Record<string, number> = {
  'a/b/x.jpg': 3,
  'a/b/y.txt': 10,
  'a/z.jpg': 7,
  'a.b': 1,
  'a-1/q.jpg': 4,
  'b.jpg': 0,
  'c/d/e/f.jpg': 12,
  'c/g.txt': 5,
  'ünï/名前.jpg': 9,
}
const ORDER = Object.keys(FILES).sort((p, q) => {
  const a = p.split('/')
  const b = q.split('/')
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1
  return a.length - b.length
})

async function collect(gen: AsyncIterable<TreeFile>): Promise<TreeFile[]> {
  const out: TreeFile[] = []
  for await (const f of gen) out.push(f)
  return out
}

describe('tree', () => {
  async function served(t: Parameters<typeof startServer>[0]): Promise<{ client: Client; root: string; url: string }> {
    const { url, root } = await startServer(t)
    for (const [rel, size] of Object.entries(FILES)) writeFile(root, rel, size)
    return { client: await connectTo(t, url), root, url }
  }

  test('lists every file under the root with its size, depth first in name order', async (t) => {
    const { client } = await served(t)
    assert.deepEqual(await collect(client.tree()), ORDER.map((path) => ({ path, size: FILES[path] })))
  })

  test('pages of any size give the same list, page after page', async (t) => {
    const { client } = await served(t)
    const whole = await collect(client.tree())
    for (const pageSize of [1, 2, 3, 8, 9, 100]) assert.deepEqual(await collect(client.tree('', { pageSize })), whole, `pages of ${pageSize}`)
  })

  test('a page holds at most limit files and names the cursor of the next; the last says null', async (t) => {
    const { url } = await served(t)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', limit: 4 })
    const first = json(await peer.done(1))
    assert.deepEqual(first.files.map((f: TreeFile) => f.path), ORDER.slice(0, 4))
    assert.equal(first.next, ORDER[3])
    peer.send({ id: 2, op: 'tree', limit: 100, after: first.next })
    const rest = json(await peer.done(2))
    assert.deepEqual(rest.files.map((f: TreeFile) => f.path), ORDER.slice(4))
    assert.equal(rest.next, null)
  })

  test('a subdirectory, a suffix, and a single file', async (t) => {
    const { client } = await served(t)
    assert.deepEqual(await collect(client.tree('c')), [{ path: 'c/d/e/f.jpg', size: 12 }, { path: 'c/g.txt', size: 5 }])
    assert.deepEqual((await collect(client.tree('', { suffix: '.jpg', pageSize: 2 }))).map((f) => f.path), ORDER.filter((p) => p.endsWith('.jpg')))
    assert.deepEqual(await collect(client.tree('a/z.jpg')), [{ path: 'a/z.jpg', size: 7 }])
  })

  test('files added before the cursor between pages are not listed; those after it are', async (t) => {
    const { client, root } = await served(t)
    const seen: string[] = []
    for await (const f of client.tree('', { pageSize: 2 })) {
      seen.push(f.path)
      if (f.path === 'a/z.jpg') {
        writeFileSync(join(root, 'a/b/w.jpg'), 'w') // before the cursor
        writeFileSync(join(root, 'c/h.jpg'), 'h') // after it
      }
    }
    assert.ok(!seen.includes('a/b/w.jpg'))
    assert.ok(seen.includes('c/h.jpg'))
    assert.equal(new Set(seen).size, seen.length, 'no path twice')
  })

  test('symlinks are followed inside the root, never out of it', async (t) => {
    const { client, root } = await served(t)
    const outside = tempDir(t)
    writeFile(outside, 'secret.jpg', 50)
    symlinkSync(outside, join(root, 'zz-out'))
    symlinkSync(join(outside, 'secret.jpg'), join(root, 'zz-secret.jpg'))
    symlinkSync('c/d', join(root, 'zz-in'))
    const paths = (await collect(client.tree())).map((f) => f.path)
    assert.ok(!paths.some((p) => p.startsWith('zz-out') || p === 'zz-secret.jpg'), paths.join(' '))
  })

  test('a bad limit, a missing directory, an escape: clear errors', async (t) => {
    const { client, url } = await served(t)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'tree', limit: 0 })
    assert.equal(json(await peer.done(1)).code, 'EBADREQ')
    peer.send({ id: 2, op: 'tree', path: 5 })
    assert.equal(json(await peer.done(2)).code, 'EBADREQ')
    await assert.rejects(collect(client.tree('nope')), { code: 'ENOENT' })
    await assert.rejects(collect(client.tree('../etc')), { code: 'EACCES' })
    assert.equal((await peer.done(2)).type, FrameType.ERROR)
  })
})

describe('ls', () => {
  test('names and types only, unless sizes are asked for', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'd/f.bin', 70)
    writeFile(root, 'd/sub/g.bin', 3)
    symlinkSync('f.bin', join(root, 'd/link.bin'))
    const client = await connectTo(t, url)
    assert.deepEqual(await client.ls('d'), [
      { name: 'f.bin', type: 'file' },
      { name: 'link.bin', type: 'file' },
      { name: 'sub', type: 'dir' },
    ])
    assert.deepEqual(await client.ls('d', { long: true }), [
      { name: 'f.bin', type: 'file', size: 70 },
      { name: 'link.bin', type: 'file', size: 70 },
      { name: 'sub', type: 'dir' },
    ])
  })
})

describe('a listing larger than the cache', () => {
  test('the server warns once, adding up the pages of one listing', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * 1024, blockSize: 16 * 1024 })
    for (let i = 0; i < 10; i++) writeFile(root, `d/${i}.bin`, 10_000)
    const warnings: string[] = []
    server.on('warning', (m: string) => warnings.push(m))
    const client = await connectTo(t, url)
    let seen = 0
    for await (const _ of client.tree('d', { pageSize: 6 })) if (++seen === 6) break // one page, 60 KB
    assert.equal(warnings.length, 0, '60 KB listed: within the 64 KiB cache')
    assert.equal((await collect(client.tree('d', { pageSize: 3 }))).length, 10)
    assert.equal(warnings.length, 1, 'pages of 30 KB, adding up to 100 KB')
    assert.match(warnings[0], /^d holds more than the cache/)
    await collect(client.tree('d'))
    assert.equal(warnings.length, 1, 'once')
  })
})

describe('streamed tree lines', () => {
  /** PROTOCOL.md, "Streamed tree": a JSON object a line. */
  const EXAMPLE = Buffer.from('{"path":"train/cat/0001.jpg","size":120007}\n{"path":"train/cat/0002.jpg","size":98311}\n{"path":"ünï/名前.jpg","size":9}\n')
  const FILES = [
    { path: 'train/cat/0001.jpg', size: 120007 },
    { path: 'train/cat/0002.jpg', size: 98311 },
    { path: 'ünï/名前.jpg', size: 9 },
  ]

  test('the PROTOCOL.md example parses to its files however the stream is cut (inside a line, inside a character)', () => {
    for (const cut of [1, 5, 44, EXAMPLE.length]) {
      const lines = new TreeLines()
      const got: TreeFile[] = []
      for (let at = 0; at < EXAMPLE.length; at += cut) got.push(...lines.push(EXAMPLE.subarray(at, at + cut)))
      assert.ok(lines.atBoundary)
      assert.deepEqual(got, FILES, `cut every ${cut} bytes`)
    }
  })

  test('a stream that stops inside a line is not at a boundary; a line that is not JSON is EPROTO', () => {
    const lines = new TreeLines()
    lines.push(Buffer.from('{"path":"a","size":1}\n{"path":'))
    assert.equal(lines.atBoundary, false)
    assert.throws(() => new TreeLines().push(Buffer.from('{"path": nope}\n')), { code: 'EPROTO' })
    assert.throws(() => new TreeLines().push(Buffer.from('{"path":"a"}\n')), { code: 'EPROTO' })
  })
})
