/**
 * Payload CRC-32: zlib at first, the SIMD package after SWITCH_AFTER bytes or
 * on request, and the same sums either way. The cases run in order: the
 * switch is once per process.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { crc32, crc32Implementation, useFastCrc32 } from '../../lib/protocol/crc32.js'
import { FAST_CRC32_INSTALLED } from '../helpers/optional.js'

const dir = mkdtempSync(join(tmpdir(), 'crc32-spec-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function sameSumsAsZlib(): void {
  for (const length of [0, 1, 3, 20, 4096, 262_144 + 5]) {
    const data = randomBytes(length)
    // As the client sums: views into a larger buffer, at an odd offset.
    const view = new Uint8Array(randomBytes(length + 10).buffer, 5, length)
    for (const seed of [0, 1, 0xffffffff, 0x1234abcd]) {
      // zlib answers 0 for an empty view with no memory behind it (randomBytes(0)); the sum of nothing is the seed.
      assert.equal(crc32(data, seed), length ? zlibCrc32(data, seed) : seed, `length ${length}, seed ${seed}`)
      assert.equal(crc32(view, seed), length ? zlibCrc32(view, seed) : seed, `view of length ${length}, seed ${seed}`)
    }
  }
}

describe('crc32', () => {
  it('starts on zlib and gives its sums', () => {
    assert.equal(crc32Implementation(), 'zlib')
    sameSumsAsZlib()
  })

  it('keeps zlib when a replacement is missing or sums wrong', () => {
    assert.equal(useFastCrc32(join(dir, 'no-such-module.cjs')), false)
    const wrong = join(dir, 'wrong.cjs')
    writeFileSync(wrong, 'exports.crc32 = (data, value = 0) => (value + data.length) >>> 0\n')
    assert.equal(useFastCrc32(wrong), false)
    const throws = join(dir, 'throws.cjs')
    writeFileSync(throws, 'exports.crc32 = () => { throw new Error("no") }\n')
    assert.equal(useFastCrc32(throws), false)
    assert.equal(crc32Implementation(), 'zlib')
    sameSumsAsZlib()
  })

  it('switches to @node-rs/crc32 by itself after 64 MiB summed, with the same sums', { skip: !FAST_CRC32_INSTALLED && '@node-rs/crc32 has no binary here' }, () => {
    // The cases above summed ~2 MiB.
    const block = Buffer.alloc(1024 * 1024, 0x5a)
    let mib = 0
    while (crc32Implementation() === 'zlib' && mib < 100) {
      crc32(block)
      mib++
    }
    assert.equal(crc32Implementation(), '@node-rs/crc32')
    assert.ok(mib >= 60 && mib <= 65, `switched after ${mib} MiB`)
    sameSumsAsZlib()
    assert.equal(useFastCrc32(), true, 'asking again answers from what is in use')
  })
})
