import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { parseClientPath } from '../../lib/fs/client-path.js'
import { uploadTempName } from '../../lib/fs/upload-temp.js'

describe('parseClientPath', () => {
  test('splits a path into its segments, dropping empty and "." ones', () => {
    assert.deepEqual(parseClientPath('a/b/c.txt'), { parts: ['a', 'b', 'c.txt'], dirOnly: false })
    assert.deepEqual(parseClientPath('a//./b'), { parts: ['a', 'b'], dirOnly: false })
    for (const root of ['', '.', './', './/.']) assert.deepEqual(parseClientPath(root).parts, [], JSON.stringify(root))
  })

  test('a trailing "/" or "/." asks for a directory; a lone "." or "" does not', () => {
    assert.equal(parseClientPath('a/').dirOnly, true)
    assert.equal(parseClientPath('a/.').dirOnly, true)
    assert.equal(parseClientPath('./').dirOnly, true)
    assert.equal(parseClientPath('a').dirOnly, false)
    assert.equal(parseClientPath('.').dirOnly, false)
    assert.equal(parseClientPath('').dirOnly, false)
  })

  test('refuses "..", absolute paths, NUL bytes and backslashes with EACCES', () => {
    for (const p of ['..', 'a/../b', 'a/..', '/etc/passwd', '/', 'a\0b', 'a\\b', '..\\x']) {
      assert.throws(() => parseClientPath(p), { code: 'EACCES' }, JSON.stringify(p))
    }
  })

  test('accepts names that only contain dots', () => {
    assert.deepEqual(parseClientPath('..hidden/a..b/...').parts, ['..hidden', 'a..b', '...'])
  })

  test('refuses a path over 4096 bytes and a name over 255 bytes, counted in UTF-8', () => {
    assert.deepEqual(parseClientPath('x'.repeat(255)).parts, ['x'.repeat(255)])
    assert.throws(() => parseClientPath('x'.repeat(256)), { code: 'EACCES', message: /longer than 255 bytes/ })
    // 128 two-byte characters: 128 characters, 256 bytes.
    assert.throws(() => parseClientPath('é'.repeat(128)), { code: 'EACCES' })
    const long = Array.from({ length: 20 }, () => 'y'.repeat(250)).join('/')
    assert.throws(() => parseClientPath(long), { code: 'EACCES', message: /longer than 4096 bytes/ })
  })

  test('an upload\'s temporary file is not there (ENOENT), wherever it stands in the path', () => {
    const temp = uploadTempName()
    assert.throws(() => parseClientPath(temp), { code: 'ENOENT' })
    assert.throws(() => parseClientPath(`dir/${temp}/x`), { code: 'ENOENT' })
  })

  test('anything but a string is EBADREQ', () => {
    for (const p of [undefined, null, 3, ['a'], { path: 'a' }]) assert.throws(() => parseClientPath(p), { code: 'EBADREQ' }, String(p))
  })
})
