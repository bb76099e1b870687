/** A crc32 server sums every page it reads from disk: it loads the SIMD implementation at once. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { crc32Implementation } from '../../lib/protocol/crc32.js'
import { FAST_CRC32_INSTALLED } from '../helpers/optional.js'
import { startServer } from '../helpers/server.js'

describe('server checksums', () => {
  it('switches payload crc32 to @node-rs/crc32 when it starts', { skip: !FAST_CRC32_INSTALLED && '@node-rs/crc32 has no binary here' }, async (t) => {
    assert.equal(crc32Implementation(), 'zlib', 'nothing has switched before the server')
    await startServer(t)
    assert.equal(crc32Implementation(), '@node-rs/crc32')
  })
})
