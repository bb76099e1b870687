/**
 * The pinned blocks' bookkeeping: found by key, known by buffer, and their
 * bytes counted exactly as blocks come and go.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PinnedBlocks } from '../../lib/cache/pinned-blocks.js'

test('blocks are found by key and by buffer, and their bytes add up', () => {
  const pinned = new PinnedBlocks()
  const a = Buffer.alloc(100)
  const b = Buffer.alloc(30)
  assert.equal(pinned.add('f#0', a), true)
  assert.equal(pinned.add('f#1', b), true)
  assert.equal(pinned.get('f#0'), a)
  assert.equal(pinned.has('f#1'), true)
  assert.equal(pinned.holds(b), true)
  assert.equal(pinned.holds(Buffer.alloc(30)), false, 'an equal buffer is not the pinned one')
  assert.equal(pinned.bytes, 130)
  assert.equal(pinned.size, 2)
})

test('a key pinned twice keeps its first block and counts it once', () => {
  const pinned = new PinnedBlocks()
  const first = Buffer.alloc(10)
  pinned.add('k', first)
  assert.equal(pinned.add('k', Buffer.alloc(20)), false)
  assert.equal(pinned.get('k'), first)
  assert.equal(pinned.bytes, 10)
})

test('removing gives the block back once and forgets it by key and by buffer', () => {
  const pinned = new PinnedBlocks()
  const a = Buffer.alloc(64)
  pinned.add('k', a)
  assert.equal(pinned.remove('k'), a)
  assert.equal(pinned.remove('k'), undefined)
  assert.equal(pinned.has('k'), false)
  assert.equal(pinned.holds(a), false)
  assert.equal(pinned.bytes, 0)
  assert.equal(pinned.size, 0)
})
