import assert from 'node:assert/strict'
import { test } from 'node:test'
import { chooseRange } from '../../lib/http/range.js'

const size = 1000

test('no Range header, another unit or bad syntax: the whole file', () => {
  for (const h of [undefined, 'items=0-5', 'bytes=abc', 'bytes=5-2', 'bytes=-', 'bytes', 'bytes=1-2-3']) {
    assert.deepEqual(chooseRange(h, size), { kind: 'whole' }, String(h))
  }
})

test('several ranges are answered with the whole file', () => {
  assert.deepEqual(chooseRange('bytes=0-1,5-9', size), { kind: 'whole' })
})

test('a-b, a- and -n select bytes, end exclusive, clipped to the file', () => {
  assert.deepEqual(chooseRange('bytes=0-0', size), { kind: 'part', start: 0, end: 1 })
  assert.deepEqual(chooseRange('bytes=10-19', size), { kind: 'part', start: 10, end: 20 })
  assert.deepEqual(chooseRange('Bytes = 990-5000', size), { kind: 'part', start: 990, end: 1000 })
  assert.deepEqual(chooseRange('bytes=500-', size), { kind: 'part', start: 500, end: 1000 })
  assert.deepEqual(chooseRange('bytes=-10', size), { kind: 'part', start: 990, end: 1000 })
  assert.deepEqual(chooseRange('bytes=-5000', size), { kind: 'part', start: 0, end: 1000 })
})

test('a start at or past the end, a zero suffix, or any range of an empty file is unsatisfiable', () => {
  assert.deepEqual(chooseRange('bytes=1000-', size), { kind: 'unsatisfiable' })
  assert.deepEqual(chooseRange('bytes=1000-1001', size), { kind: 'unsatisfiable' })
  assert.deepEqual(chooseRange('bytes=-0', size), { kind: 'unsatisfiable' })
  assert.deepEqual(chooseRange('bytes=-5', 0), { kind: 'unsatisfiable' })
  assert.deepEqual(chooseRange('bytes=0-', 0), { kind: 'unsatisfiable' })
})
