import assert from 'node:assert/strict'
import { test } from 'node:test'
import { etagOf, lastModified, notModified, rangeStillApplies } from '../../lib/http/validators.js'

const key = '2049:1234:100:1700000000123456789:1700000000123456789'
const mtimeMs = 1_700_000_000_123

test('the ETag is strong, stable for a version, and differs for another', () => {
  const tag = etagOf(key)
  assert.match(tag, /^"[\w-]+"$/)
  assert.equal(etagOf(key), tag)
  assert.notEqual(etagOf(key.replace(/9$/, '8')), tag)
  assert.ok(!tag.includes('1234'), 'the inode number is not shown')
})

test('If-None-Match: any listed tag, weak or strong, or *, means 304; If-Modified-Since is then ignored', () => {
  const tag = etagOf(key)
  assert.equal(notModified({ 'if-none-match': tag }, tag, mtimeMs), true)
  assert.equal(notModified({ 'if-none-match': `"x", W/${tag}` }, tag, mtimeMs), true)
  assert.equal(notModified({ 'if-none-match': '*' }, tag, mtimeMs), true)
  assert.equal(notModified({ 'if-none-match': '"other"', 'if-modified-since': lastModified(mtimeMs) }, tag, mtimeMs), false)
})

test('If-Modified-Since: 304 when the file is not newer, to the second', () => {
  const tag = etagOf(key)
  assert.equal(notModified({ 'if-modified-since': lastModified(mtimeMs) }, tag, mtimeMs), true)
  assert.equal(notModified({ 'if-modified-since': new Date(mtimeMs - 2000).toUTCString() }, tag, mtimeMs), false)
  assert.equal(notModified({ 'if-modified-since': 'not a date' }, tag, mtimeMs), false)
  assert.equal(notModified({}, tag, mtimeMs), false)
})

test('If-Range: the range counts only for the same strong tag or the exact Last-Modified', () => {
  const tag = etagOf(key)
  assert.equal(rangeStillApplies({}, tag, mtimeMs), true)
  assert.equal(rangeStillApplies({ 'if-range': tag }, tag, mtimeMs), true)
  assert.equal(rangeStillApplies({ 'if-range': `W/${tag}` }, tag, mtimeMs), false)
  assert.equal(rangeStillApplies({ 'if-range': '"stale"' }, tag, mtimeMs), false)
  assert.equal(rangeStillApplies({ 'if-range': lastModified(mtimeMs) }, tag, mtimeMs), true)
  assert.equal(rangeStillApplies({ 'if-range': new Date(mtimeMs + 5000).toUTCString() }, tag, mtimeMs), false)
})
