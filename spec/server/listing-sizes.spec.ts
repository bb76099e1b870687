/**
 * ListingSizes: the bytes a paged `tree` listing has shown, carried from
 * page to page by its cursor, and one warning, the first time a listing
 * passes the limit. A page whose cursor is not known starts a new count.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { ListingSizes } from '../../lib/server/listing-sizes.js'

function sizes(limit: number) {
  const warnings: [string, number][] = []
  return { sizes: new ListingSizes(limit, (path, bytes) => void warnings.push([path, bytes])), warnings }
}

describe('ListingSizes', () => {
  test('adds up the pages of a listing through their cursors and warns once it passes the limit', () => {
    const { sizes: s, warnings } = sizes(100)
    s.page('train', undefined, 'c1', 40)
    s.page('train', 'c1', 'c2', 40)
    assert.deepEqual(warnings, [])
    s.page('train', 'c2', null, 40)
    assert.deepEqual(warnings, [['train', 120]])
  })

  test('a listing of exactly the limit is no warning; one byte more is', () => {
    const a = sizes(100)
    a.sizes.page('', undefined, 'c', 60)
    a.sizes.page('', 'c', null, 40)
    assert.deepEqual(a.warnings, [])
    const b = sizes(100)
    b.sizes.page('', undefined, null, 101)
    assert.deepEqual(b.warnings, [['', 101]])
  })

  test('warns once for the server\'s life, whatever listings pass the limit later', () => {
    const { sizes: s, warnings } = sizes(100)
    s.page('a', undefined, null, 200)
    s.page('b', undefined, null, 300)
    s.page('a', undefined, 'c', 500)
    assert.deepEqual(warnings, [['a', 200]])
  })

  test('a page after an unknown cursor, or a cursor of another path, starts a new count', () => {
    const { sizes: s, warnings } = sizes(100)
    s.page('a', undefined, 'c1', 60)
    s.page('a', 'nope', null, 60)
    s.page('b', 'c1', null, 60)
    assert.deepEqual(warnings, [], 'neither page continued the first')
    s.page('a', 'c1', null, 41)
    assert.deepEqual(warnings, [['a', 101]], 'the cursor was still known')
  })

  test('a cursor is used once: the same page asked again is not counted twice', () => {
    const { sizes: s, warnings } = sizes(100)
    s.page('a', undefined, 'c1', 60)
    s.page('a', 'c1', 'c2', 30)
    s.page('a', 'c1', 'c2', 30)
    assert.deepEqual(warnings, [])
    s.page('a', 'c2', null, 15)
    assert.deepEqual(warnings, [], 'the repeated page counted from nothing: 30 + 15')
  })

  test('follows the 64 most recent listings; one begun hundreds of listings ago is forgotten', () => {
    const { sizes: s, warnings } = sizes(100)
    for (let i = 0; i < 200; i++) s.page(`d${i}`, undefined, 'c', 60)
    s.page('d0', 'c', null, 60)
    assert.deepEqual(warnings, [], 'd0 was forgotten')
    s.page('d136', 'c', null, 60)
    assert.deepEqual(warnings, [['d136', 120]], 'the 64th most recent is still followed')
  })
})
