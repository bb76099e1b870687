/**
 * The `cancel` command: a request still open ends with ECANCELED; one that
 * finished, or was never sent, is left as it is. The cancel line itself is
 * never answered.
 */
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'
import { writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'

test('cancel of a finished request is ignored: no answer', async (t) => {
  const { url, root } = await startServer(t)
  writeFile(root, 'f.txt', 'hello')
  const peer = await rawPeer(t, url)
  peer.send({ id: 2, op: 'read', path: 'f.txt' })
  assert.equal((await peer.done(2)).type, FrameType.END)
  peer.send({ id: 2, op: 'cancel' })
  peer.send({ id: 3, op: 'stat', path: 'f.txt' })
  assert.equal((await peer.done(3)).type, FrameType.RESULT)
  assert.equal(peer.frames.filter((f) => f.id === 2 && f.type === FrameType.ERROR).length, 0, 'no answer to the late cancel')
})

test('cancel of an id never used is ignored: no answer, on it or on id 0', async (t) => {
  const { url } = await startServer(t)
  const peer = await rawPeer(t, url)
  peer.send({ id: 77, op: 'cancel' })
  peer.send({ id: 1, op: 'stats' })
  assert.equal((await peer.done(1)).type, FrameType.RESULT)
  assert.deepEqual(peer.frames.filter((f) => f.id === 77 || (f.id === 0 && f.type === FrameType.ERROR)), [])
})

test('cancel of an upload under way ends it with ECANCELED, and no file is written', async (t) => {
  const { url, root } = await startServer(t, { writable: true })
  const peer = await rawPeer(t, url)
  peer.send({ id: 1, op: 'write', path: 'up.bin' })
  peer.send({ id: 1, op: 'cancel' })
  const end = await peer.done(1)
  assert.deepEqual([end.type, json(end).code], [FrameType.ERROR, 'ECANCELED'])
  assert.ok(await poll(() => readdirSync(root).length === 0, 2000), `left behind: ${readdirSync(root).join(' ')}`)
})
