/**
 * The `pin` and `unpin` commands: pin needs a path (null is none: it never
 * pins the whole tree), answers what it pinned and what is pinned now, and
 * stops when its request is cancelled, pinning nothing; unpin without a path
 * lets every pinned file go.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024

describe('pin and unpin', () => {
  test('pin needs a path: missing or null is EBADREQ, and nothing is pinned', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 16 * MiB })
    writeFile(root, 'a.bin', 1000)
    const client = await connectTo(t, url)
    for (const args of [{}, { path: null }]) await assert.rejects(client.request('pin', args), { code: 'EBADREQ', message: 'missing "path" argument' }, JSON.stringify(args))
    await assert.rejects(client.request('pin', { path: 5 }), { code: 'EBADREQ', message: '"path" must be a string' })
    assert.equal(server.stats().pinnedFiles, 0)
  })

  test('each answers what it did and what is pinned now; unpin without a path lets everything go', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 16 * MiB })
    writeFile(root, 'd/a.bin', 1000)
    writeFile(root, 'd/b.bin', 2000)
    writeFile(root, 'c.bin', 300)
    const client = await connectTo(t, url)
    assert.deepEqual(await client.pin('d'), { files: 2, bytes: 3000, pinnedFiles: 2, pinnedBytes: 3000 })
    assert.deepEqual(await client.pin('d/a.bin'), { files: 0, bytes: 0, pinnedFiles: 2, pinnedBytes: 3000 }, 'pinned already')
    assert.deepEqual(await client.pin('c.bin'), { files: 1, bytes: 300, pinnedFiles: 3, pinnedBytes: 3300 })
    assert.deepEqual(await client.unpin('d/b.bin'), { files: 1, bytes: 2000, pinnedFiles: 2, pinnedBytes: 1300 })
    assert.deepEqual(await client.request('unpin', {}), { files: 2, bytes: 1300, pinnedFiles: 0, pinnedBytes: 0 })
    assert.equal((await client.stat('c.bin')).cached, true, 'unpinned files stay cached')
  })

  test('a pin cancelled while it loads stops with ECANCELED and pins nothing', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 128 * MiB })
    for (let i = 0; i < 40; i++) writeFile(root, `big/${i}.bin`, MiB)
    writeFile(root, 'small.bin', 10)
    const peer = await rawPeer(t, url)
    // In one write: the cancel arrives while the pin has 40 MiB to load.
    peer.socket.write(JSON.stringify({ id: 1, op: 'pin', path: 'big' }) + '\n' + JSON.stringify({ id: 1, op: 'cancel' }) + '\n')
    const end = await peer.done(1)
    assert.deepEqual([end.type, json(end).code], [FrameType.ERROR, 'ECANCELED'])
    // Pins run one after another: this one answers once the cancelled one has stopped.
    peer.send({ id: 2, op: 'pin', path: 'small.bin' })
    assert.deepEqual(json(await peer.done(2)), { files: 1, bytes: 10, pinnedFiles: 1, pinnedBytes: 10 })
    assert.equal(server.stats().pinnedFiles, 1)
  })
})
