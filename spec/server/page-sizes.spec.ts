import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../../lib/protocol/constants.js'
import { checkedPageSize } from '../../lib/server/page-sizes.js'

describe('checkedPageSize', () => {
  test('gives the page size asked for, or the default', () => {
    assert.equal(checkedPageSize({}), DEFAULT_PAGE_SIZE)
    assert.equal(checkedPageSize({ pageSize: MIN_PAGE_SIZE }), MIN_PAGE_SIZE)
    assert.equal(checkedPageSize({ pageSize: MAX_PAGE_SIZE, minPageSize: MAX_PAGE_SIZE }), MAX_PAGE_SIZE)
  })

  test('refuses a page size out of bounds or not whole with a RangeError', () => {
    for (const pageSize of [MIN_PAGE_SIZE - 1, MAX_PAGE_SIZE + 1, 4096.5, Number.NaN, 0, -4096]) {
      assert.throws(() => checkedPageSize({ pageSize }), { name: 'RangeError', message: /^page size must be from/ }, String(pageSize))
    }
  })

  test('refuses a smallest page size below 1 byte, above the page size, or not whole', () => {
    assert.equal(checkedPageSize({ pageSize: 4096, minPageSize: 1 }), 4096)
    for (const minPageSize of [0, 4097, 1.5]) {
      assert.throws(() => checkedPageSize({ pageSize: 4096, minPageSize }), { name: 'RangeError', message: /^smallest page size must be from 1 to the page size \(4096\)/ }, String(minPageSize))
    }
  })
})
