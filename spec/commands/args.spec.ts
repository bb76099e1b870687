/**
 * The argument checks every command shares: what each accepts (absent and
 * null meaning "not given"), and that anything else is refused with EBADREQ
 * naming the argument, since a request's JSON can hold any value at all.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { optionalCount, optionalFlag, optionalString, pathItems, requiredString } from '../../lib/commands/args.js'

/** Values of every JSON type but the one named, for refusals. */
const NOT_STRINGS = [0, 1, true, false, [], ['a'], {}, { path: 'a' }]
const refused = (name: string) => ({ name: 'CacheservError', code: 'EBADREQ', message: new RegExp(`"${name}"`) })

describe('optionalString', () => {
  test('gives the fallback when absent or null, the string otherwise (empty too)', () => {
    assert.equal(optionalString({}, 'path', 'dflt'), 'dflt')
    assert.equal(optionalString({ path: null }, 'path', 'dflt'), 'dflt')
    assert.equal(optionalString({ path: '' }, 'path', 'dflt'), '')
    assert.equal(optionalString({ path: 'a/b c' }, 'path', 'dflt'), 'a/b c')
    assert.equal(optionalString({ other: 5 }, 'path', 'dflt'), 'dflt', 'other arguments are not its business')
  })

  test('refuses any other type', () => {
    for (const v of NOT_STRINGS) assert.throws(() => optionalString({ suffix: v }, 'suffix', ''), refused('suffix'), JSON.stringify(v))
  })
})

describe('requiredString', () => {
  test('gives the string, empty included', () => {
    assert.equal(requiredString({ path: 'x.bin' }, 'path'), 'x.bin')
    assert.equal(requiredString({ path: '' }, 'path'), '')
  })

  test('refuses a missing argument and any other type', () => {
    assert.throws(() => requiredString({}, 'path'), { code: 'EBADREQ', message: /missing "path"/ })
    assert.throws(() => requiredString({ Path: 'x' }, 'path'), { code: 'EBADREQ', message: /missing "path"/ })
    // null is not the empty path: taken as '', a pin or stat of null named the whole root.
    assert.throws(() => requiredString({ path: null }, 'path'), { code: 'EBADREQ', message: /missing "path"/ })
    for (const v of NOT_STRINGS) assert.throws(() => requiredString({ path: v }, 'path'), refused('path'), JSON.stringify(v))
  })
})

describe('optionalCount', () => {
  test('gives undefined when absent or null, and any safe non-negative integer', () => {
    assert.equal(optionalCount({}, 'offset'), undefined)
    assert.equal(optionalCount({ offset: null }, 'offset'), undefined)
    for (const v of [0, 1, 4096, 2 ** 40, Number.MAX_SAFE_INTEGER]) assert.equal(optionalCount({ offset: v }, 'offset'), v)
  })

  test('refuses negatives, fractions, unsafe or non-finite numbers, and non-numbers', () => {
    for (const v of [-1, -0.5, 1.5, 2 ** 53, NaN, Infinity, -Infinity, '5', '0', true, [], {}, [3]]) {
      assert.throws(() => optionalCount({ length: v }, 'length'), refused('length'), String(v))
    }
  })
})

describe('optionalFlag', () => {
  test('gives false when absent or null, and the boolean given', () => {
    assert.equal(optionalFlag({}, 'long'), false)
    assert.equal(optionalFlag({ long: null }, 'long'), false)
    assert.equal(optionalFlag({ long: true }, 'long'), true)
    assert.equal(optionalFlag({ long: false }, 'long'), false)
  })

  test('refuses truthy and falsy values that are not booleans', () => {
    for (const v of [0, 1, '', 'true', 'false', [], {}]) assert.throws(() => optionalFlag({ long: v }, 'long'), refused('long'), JSON.stringify(v))
  })
})

describe('pathItems', () => {
  test('takes path strings and {path, offset, length} ranges, in order', () => {
    assert.deepEqual(pathItems({ paths: ['a', { path: 'b', offset: 10, length: 5 }, { path: 'c' }, { path: 'd', offset: null, length: 0 }] }, 4), [
      { path: 'a' },
      { path: 'b', offset: 10, length: 5 },
      { path: 'c', offset: undefined, length: undefined },
      { path: 'd', offset: undefined, length: 0 },
    ])
  })

  test('takes 1 to max items, and refuses a list that is empty, longer, or not a list', () => {
    assert.equal(pathItems({ paths: ['a', 'b', 'c'] }, 3).length, 3)
    assert.equal(pathItems({ paths: ['a'] }, 1).length, 1)
    for (const paths of [[], ['a', 'b', 'c', 'd'], undefined, null, 'a', { 0: 'a', length: 1 }]) {
      assert.throws(() => pathItems({ paths }, 3), { code: 'EBADREQ', message: /"paths" must be a list of 1 to 3 paths/ }, JSON.stringify(paths))
    }
  })

  test('refuses an item that is neither a string nor a range object', () => {
    for (const item of [null, 5, true, ['a'], []]) {
      assert.throws(() => pathItems({ paths: ['ok', item] }, 10), { code: 'EBADREQ', message: /"paths" items must be/ }, JSON.stringify(item))
    }
  })

  test('refuses a range without a path string, or with a bad offset or length', () => {
    for (const item of [{}, { path: 5 }, { path: null }, { offset: 0 }]) {
      assert.throws(() => pathItems({ paths: [item] }, 10), { code: 'EBADREQ', message: /needs a "path" string/ }, JSON.stringify(item))
    }
    assert.throws(() => pathItems({ paths: [{ path: 'a', offset: -1 }] }, 10), refused('offset'))
    assert.throws(() => pathItems({ paths: [{ path: 'a', length: 1.5 }] }, 10), refused('length'))
    assert.throws(() => pathItems({ paths: [{ path: 'a', length: '3' }] }, 10), refused('length'))
  })
})
