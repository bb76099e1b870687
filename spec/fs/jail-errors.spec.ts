import assert from 'node:assert/strict'
import { openSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { CacheservError, error } from '../../lib/errors.js'
import { jailError, notDir, outside } from '../../lib/fs/jail-errors.js'
import { O_NOFOLLOW } from '../../lib/fs/path-descriptors.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

/** The error a real fs call throws. */
function thrown(fn: () => unknown): NodeJS.ErrnoException {
  try {
    fn()
  } catch (err) {
    return err as NodeJS.ErrnoException
  }
  assert.fail('did not throw')
}

describe('jailError', () => {
  test('puts real fs errors in the jail\'s words, naming the client\'s path and never the server\'s', (t) => {
    const root = tempDir(t)
    writeFile(root, 'file.txt', 'x')
    symlinkSync('loop', join(root, 'loop'))
    const cases: [NodeJS.ErrnoException, string][] = [
      [thrown(() => statSync(join(root, 'missing'))), 'ENOENT'],
      [thrown(() => statSync(join(root, 'file.txt', 'under'))), 'ENOTDIR'],
      [thrown(() => openSync(join(root, 'loop'), O_NOFOLLOW)), 'EACCES'],
      [thrown(() => statSync(join(root, 'n'.repeat(300)))), 'EACCES'],
    ]
    for (const [err, code] of cases) {
      const mapped = jailError(err, 'client/path') as CacheservError
      assert.ok(mapped instanceof CacheservError, err.code)
      assert.equal(mapped.code, code, err.code)
      assert.ok(!mapped.message.includes(root), `${err.code}: ${mapped.message}`)
    }
    assert.match((jailError(cases[0][0], 'client/path') as Error).message, /client\/path/)
  })

  test('a permission error is EACCES', () => {
    for (const code of ['EACCES', 'EPERM']) {
      const err = Object.assign(new Error(`${code}: permission denied, open '/srv/data/x'`), { code })
      assert.equal((jailError(err, 'x') as CacheservError).code, 'EACCES')
    }
  })

  test('the jail\'s own errors, and errors it has no words for, pass through as they are', () => {
    const own = error('ESHUTDOWN', 'the server is closed')
    assert.equal(jailError(own, 'x'), own)
    const other = Object.assign(new Error('too many open files'), { code: 'EMFILE' })
    assert.equal(jailError(other, 'x'), other)
  })
})

describe('the jail\'s refusals', () => {
  test('outside is EACCES and notDir is ENOTDIR, both naming the client\'s path', () => {
    assert.equal(outside('a/b').code, 'EACCES')
    assert.match(outside('a/b').message, /"a\/b".*outside the root/)
    assert.equal(notDir('a/b').code, 'ENOTDIR')
    assert.match(notDir('a/b').message, /a\/b/)
  })
})
