/**
 * The `auth` command: the first request to a server started with a token.
 * The right token is answered RESULT {auth: "ok"}; anything else ends the
 * connection with EAUTH on id 0. Anywhere else auth is refused with EBADREQ
 * and the connection goes on: it needs no token, or is open already.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'
import { writeFile } from '../helpers/fixtures.js'
import { within } from '../helpers/wait.js'

const TOKEN = 'a-long-enough-secret-token'

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
  const { url } = await startServer(t, { token: TOKEN })
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'auth', token: TOKEN })
  assert.deepEqual(json(await peer.done(1)), { auth: 'ok' })
  peer.send({ id: 2, op: 'auth', token: TOKEN })
  const again = await peer.done(2)
  assert.equal(json(again).code, 'EBADREQ')
  assert.match(json(again).message, /authenticated already/)
  peer.send({ id: 3, op: 'stats' })
  assert.equal((await peer.done(3)).type, FrameType.RESULT)
})

test('an auth without a token, or with one that is not a string, is EAUTH on id 0 and the connection closes', async (t) => {
  const { url } = await startServer(t, { token: TOKEN, authBackoff: 0 })
  for (const [args, why] of [[{}, 'auth without a token'], [{ token: 42 }, 'the server refused the token']] as const) {
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'auth', ...args })
    assert.ok(await within(peer.closed, 5000), 'the server closed the connection')
    const answers = peer.frames.filter((f) => f.type !== FrameType.HELLO)
    assert.deepEqual(answers.map((f) => [f.type, f.id, json(f)]), [[FrameType.ERROR, 0, { code: 'EAUTH', message: why }]], JSON.stringify(args))
  }
})
