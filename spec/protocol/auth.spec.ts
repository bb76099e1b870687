/** tokenMatches: the server's token check, in constant time whatever the lengths. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { tokenMatches } from '../../lib/protocol/auth.js'

describe('tokenMatches', () => {
  test('accepts exactly the token', () => {
    assert.equal(tokenMatches('s3cret', 's3cret'), true)
    assert.equal(tokenMatches('ünïcødé 名前', 'ünïcødé 名前'), true)
  })

  test('refuses any other string: shorter, longer, other case, padded, empty', () => {
    for (const given of ['s3cre', 's3cret!', 'S3CRET', ' s3cret', 's3cret\n', '', 's3cret'.repeat(100)]) {
      assert.equal(tokenMatches('s3cret', given), false, JSON.stringify(given))
    }
  })

  test('strings that differ in length are compared without throwing', () => {
    // timingSafeEqual throws on buffers of unequal length; digests always match in length.
    assert.doesNotThrow(() => tokenMatches('a'.repeat(64), 'b'))
    assert.doesNotThrow(() => tokenMatches('a', 'b'.repeat(10_000)))
  })

  test('compares characters, not bytes that only look alike', () => {
    assert.equal(tokenMatches('é', 'e\u0301'), false, 'the same letter in another normal form is another token')
    assert.equal(tokenMatches('a\0', 'a'), false)
  })

  test('what is not a string never matches, not even a token that reads the same', () => {
    for (const given of [undefined, null, 123, ['s3cret'], { toString: () => 's3cret' }, Buffer.from('s3cret')]) {
      assert.equal(tokenMatches('s3cret', given), false, String(given))
    }
    assert.equal(tokenMatches('123', 123), false)
  })
})
