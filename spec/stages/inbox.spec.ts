/**
 * Inbox: an upload's frames handed to its command one at a time. A frame's
 * `done` (which lets the connection read on) runs only when the command takes
 * it, so the client is held back by the command, not buffered for.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { setImmediate as tick } from 'node:timers/promises'
import { FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { Inbox } from '../../lib/stages/inbox.js'
import { within } from '../helpers/wait.js'

const frame = (seq: number): ReceivedFrame => ({ type: FrameType.DATA, id: 1, seq, payload: Buffer.from([seq]), checksum: 1, epoch: 0, intact: true })

describe('Inbox', () => {
  test('hands frames on in the order pushed', async () => {
    const inbox = new Inbox()
    for (let seq = 0; seq < 5; seq++) inbox.push(frame(seq), () => {})
    const it = inbox[Symbol.asyncIterator]()
    const seqs: number[] = []
    for (let i = 0; i < 5; i++) seqs.push((await it.next()).value!.seq)
    assert.deepEqual(seqs, [0, 1, 2, 3, 4])
    inbox.close()
    assert.equal((await it.next()).done, true)
  })

  test('calls a frame\'s done only when the command takes it, one frame at a time', async () => {
    const inbox = new Inbox()
    const done: number[] = []
    inbox.push(frame(0), () => done.push(0))
    inbox.push(frame(1), () => done.push(1))
    assert.deepEqual(done, [], 'nothing taken yet')
    const it = inbox[Symbol.asyncIterator]()
    assert.equal((await it.next()).value?.seq, 0)
    assert.deepEqual(done, [0])
    await tick()
    assert.deepEqual(done, [0], 'the next frame waits for the command to ask')
    assert.equal((await it.next()).value?.seq, 1)
    assert.deepEqual(done, [0, 1])
    inbox.close()
    assert.equal((await it.next()).done, true)
  })

  test('a command waiting for a frame wakes when one is pushed', async () => {
    const inbox = new Inbox()
    const it = inbox[Symbol.asyncIterator]()
    const next = it.next()
    assert.equal(await within(next, 50), false, 'no frame yet')
    let taken = false
    inbox.push(frame(7), () => (taken = true))
    assert.equal((await next).value?.seq, 7)
    assert.ok(taken)
    inbox.close()
  })

  test('close ends a waiting command and runs the callbacks of frames it never took', async () => {
    const inbox = new Inbox()
    const it = inbox[Symbol.asyncIterator]()
    inbox.push(frame(0), () => {})
    assert.equal((await it.next()).value?.seq, 0)
    const next = it.next()
    await tick()
    const held: number[] = []
    inbox.push(frame(1), () => held.push(1))
    inbox.push(frame(2), () => held.push(2))
    assert.equal((await next).value?.seq, 1)
    inbox.close()
    assert.deepEqual(held, [1, 2], 'frame 2 was dropped, and the connection let go of it')
    assert.equal((await it.next()).done, true)
  })

  test('a frame pushed after close is released at once and never handed on', async () => {
    const inbox = new Inbox()
    inbox.close()
    let released = false
    inbox.push(frame(0), () => (released = true))
    assert.ok(released)
    const seqs: number[] = []
    for await (const f of inbox) seqs.push(f.seq)
    assert.deepEqual(seqs, [])
  })

  test('a command that waits while the inbox closes is not left hanging', async () => {
    const inbox = new Inbox()
    const it = inbox[Symbol.asyncIterator]()
    const next = it.next()
    await tick()
    inbox.close()
    assert.ok(await within(next, 1000), 'the wait ended')
    assert.equal((await next).done, true)
  })
})
