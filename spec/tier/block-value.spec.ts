import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { crc32 } from '../../lib/protocol/crc32.js'
import { decodeBlockValue, encodeBlockValue, VALUE_HEADER } from '../../lib/tier/block-value.js'

test('a block value round-trips: header, then the bytes, with their crc32', () => {
  const block = randomBytes(100_000)
  const value = encodeBlockValue(block)
  assert.equal(value.length, VALUE_HEADER + block.length)
  assert.equal(value.subarray(0, 4).toString('latin1'), 'CSB1')
  const found = decodeBlockValue(value, block.length)!
  assert.deepEqual(found.bytes, block)
  assert.equal(found.crc, crc32(block))
})

test('the value is a copy: the block may be reused once it is made', () => {
  const block = randomBytes(4096)
  const value = encodeBlockValue(block)
  const before = Buffer.from(block)
  block.fill(0)
  assert.deepEqual(decodeBlockValue(value, 4096)!.bytes, before)
})

test('a value of another length, cut short, or not ours is refused', () => {
  const value = encodeBlockValue(randomBytes(1000))
  assert.equal(decodeBlockValue(value, 999), null, 'another block length')
  assert.equal(decodeBlockValue(value.subarray(0, 500), 1000), null, 'cut short')
  const foreign = Buffer.from(value)
  foreign.write('XXXX', 0, 'latin1')
  assert.equal(decodeBlockValue(foreign, 1000), null, 'not our magic')
  const lying = Buffer.from(value)
  lying.writeUInt32LE(999, 4)
  assert.equal(decodeBlockValue(lying, 1000), null, 'a header that disagrees with the length')
  assert.equal(decodeBlockValue(Buffer.alloc(0), 0), null, 'empty')
})

test('a flipped byte passes the header but not the crc32 (the caller sums its copy)', () => {
  const block = randomBytes(1000)
  const value = encodeBlockValue(block)
  value[VALUE_HEADER + 10]! ^= 1
  const found = decodeBlockValue(value, 1000)!
  assert.notEqual(crc32(found.bytes), found.crc)
})
