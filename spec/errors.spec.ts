/**
 * toCacheservError: what a thrown value becomes on the wire. A disk that is
 * full or failing is EIO (a request error), never EINTERNAL (logged as a bug).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { error, toCacheservError } from '../lib/errors.js'

const sysError = (code: string) => Object.assign(new Error(`${code}: something, write`), { code })

describe('toCacheservError', () => {
  const cases: [string, string][] = [
    ['ENOENT', 'ENOENT'],
    ['EISDIR', 'EISDIR'],
    ['EPERM', 'EACCES'],
    ['ENXIO', 'EACCES'],
    ['ENOSPC', 'EIO'],
    ['EDQUOT', 'EIO'],
    ['EFBIG', 'EIO'],
    ['ESTALE', 'EIO'],
    ['ENFILE', 'EMFILE'],
    ['EWHATEVER', 'EINTERNAL'],
  ]
  for (const [from, to] of cases) {
    test(`${from} → ${to}, keeping the message and the cause`, () => {
      const original = sysError(from)
      const e = toCacheservError(original)
      assert.equal(e.code, to)
      assert.equal(e.message, original.message)
      assert.equal(e.cause, original)
    })
  }

  test('our own errors pass through as they are; a thrown non-error is EINTERNAL', () => {
    const own = error('ECHANGED', 'changed')
    assert.equal(toCacheservError(own), own)
    assert.equal(toCacheservError('a string').code, 'EINTERNAL')
    assert.equal(toCacheservError(null).code, 'EINTERNAL')
  })
})
