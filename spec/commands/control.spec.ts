/**
 * The control commands (auth, cancel, nack): entries of the command table that
 * act on a connection's other requests, over a real socket.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'
import { writeFile } from '../helpers/fixtures.js'

test('auth on a server without a token is refused with EBADREQ, and the connection goes on', async (t) => {
  const { url, root } = await startServer(t)
  writeFile(root, 'f.txt', 'hello')
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'auth', token: 'x' })
  const refused = await peer.done(1)
  assert.equal(refused.type, FrameType.ERROR)
  assert.equal(json(refused).code, 'EBADREQ')
  assert.match(json(refused).message, /needs no token/)
  peer.send({ id: 2, op: 'stat', path: 'f.txt' })
  assert.equal((await peer.done(2)).type, FrameType.RESULT)
})

test('auth again on an authenticated connection is refused; the connection stays open', async (t) => {
  const { url } = await startServer(t, { token: 'a-long-enough-secret-token' })
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'auth', token: 'a-long-enough-secret-token' })
  assert.deepEqual(json(await peer.done(1)), { auth: 'ok' })
  peer.send({ id: 2, op: 'auth', token: 'a-long-enough-secret-token' })
  const again = await peer.done(2)
  assert.equal(json(again).code, 'EBADREQ')
  assert.match(json(again).message, /authenticated already/)
  peer.send({ id: 3, op: 'stats' })
  assert.equal((await peer.done(3)).type, FrameType.RESULT)
})

test('a nack with a bad position is EBADREQ; cancel of a finished request is ignored', async (t) => {
  const { url, root } = await startServer(t)
  writeFile(root, 'f.txt', 'hello')
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'nack', seq: -1, offset: 0, resync: 1 })
  assert.equal(json(await peer.done(1)).code, 'EBADREQ')
  peer.send({ id: 2, op: 'read', path: 'f.txt' })
  assert.equal((await peer.done(2)).type, FrameType.END)
  peer.send({ id: 2, op: 'cancel' })
  peer.send({ id: 3, op: 'stat', path: 'f.txt' })
  assert.equal((await peer.done(3)).type, FrameType.RESULT)
  assert.equal(peer.frames.filter((f) => f.id === 2 && f.type === FrameType.ERROR).length, 0, 'no answer to the late cancel')
})
