/**
 * Payload digests: the names and ids of the algorithms and their sizes, the
 * digests written (standard CRC-32 and MD5, checked against known values and
 * node's own), and verification over a whole payload or its pieces, which
 * must catch a flipped byte in either the payload or the digest.
 */
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { checksumId, checksumName, digestSize, verifyDigest, verifyDigestOfViews, writeDigest } from '../../lib/protocol/checksum.js'
import { ChecksumId } from '../../lib/protocol/constants.js'

const CHECK = Buffer.from('123456789')

/** `payload`'s digest under `id`, written between two guard bytes. */
function digestOf(id: number, payload: Uint8Array): Buffer {
  const out = Buffer.alloc(digestSize(id) + 2, 0xee)
  writeDigest(id, payload, out, 1)
  assert.equal(out[0], 0xee)
  assert.equal(out[out.length - 1], 0xee, 'nothing written past the digest')
  return out.subarray(1, out.length - 1)
}

/** `payload` cut at the given offsets, each piece a view into a larger buffer at an odd position. */
function pieces(payload: Buffer, cuts: number[]): Uint8Array[] {
  const at = [0, ...cuts, payload.length]
  return at.slice(1).map((end, i) => {
    const host = Buffer.alloc(end - at[i] + 3)
    payload.copy(host, 1, at[i], end)
    return new Uint8Array(host.buffer, host.byteOffset + 1, end - at[i])
  })
}

describe('checksum names and sizes', () => {
  test('map names to wire ids and back', () => {
    for (const name of ['none', 'crc32', 'md5'] as const) assert.equal(checksumName(checksumId(name)), name)
    assert.deepEqual([checksumId('none'), checksumId('crc32'), checksumId('md5')], [0, 1, 2])
    assert.equal(checksumName(3), undefined)
    assert.equal(checksumName(-1), undefined)
  })

  test('size digests as the header promises, refusing unknown ids', () => {
    assert.deepEqual([0, 1, 2].map(digestSize), [0, 4, 16])
    for (const id of [3, 255, -1, 1.5]) assert.throws(() => digestSize(id), RangeError, String(id))
  })
})

describe('writeDigest', () => {
  test('writes the standard CRC-32, big-endian', () => {
    assert.equal(digestOf(ChecksumId.crc32, CHECK).toString('hex'), 'cbf43926')
    assert.equal(digestOf(ChecksumId.crc32, new Uint8Array(0)).toString('hex'), '00000000')
    const data = randomBytes(70_000)
    assert.equal(digestOf(ChecksumId.crc32, data).readUInt32BE(0), zlibCrc32(data))
  })

  test('writes the MD5 digest', () => {
    assert.equal(digestOf(ChecksumId.md5, new Uint8Array(0)).toString('hex'), 'd41d8cd98f00b204e9800998ecf8427e')
    const data = randomBytes(70_000)
    assert.ok(digestOf(ChecksumId.md5, data).equals(createHash('md5').update(data).digest()))
  })

  test('writes nothing for none, and refuses an unknown id', () => {
    assert.equal(digestOf(ChecksumId.none, CHECK).length, 0)
    assert.throws(() => writeDigest(3, CHECK, Buffer.alloc(32), 0), RangeError)
  })
})

describe('verifyDigest and verifyDigestOfViews', () => {
  const payload = randomBytes(10_000)
  const cutsList = [[], [1], [5000], [1, 2, 3], [4096, 4097, 9999], [0, 0, 10_000]]

  for (const [name, id] of [['crc32', ChecksumId.crc32], ['md5', ChecksumId.md5]] as const) {
    test(`accept the right digest, whole or in any pieces, and nothing else (${name})`, () => {
      const digest = digestOf(id, payload)
      assert.equal(verifyDigest(id, payload, digest, 0), true)
      for (const cuts of cutsList) assert.equal(verifyDigestOfViews(id, pieces(payload, cuts), digest, 0), true, `cuts ${cuts}`)

      for (const at of [0, 4999, 9999]) {
        const bad = Buffer.from(payload)
        bad[at] ^= 0x01
        assert.equal(verifyDigest(id, bad, digest, 0), false, `payload byte ${at}`)
        assert.equal(verifyDigestOfViews(id, pieces(bad, [3, 5000]), digest, 0), false, `pieces, payload byte ${at}`)
      }
      for (let at = 0; at < digest.length; at++) {
        const bad = Buffer.from(digest)
        bad[at] ^= 0x80
        assert.equal(verifyDigest(id, payload, bad, 0), false, `digest byte ${at}`)
        assert.equal(verifyDigestOfViews(id, pieces(payload, [7]), bad, 0), false, `pieces, digest byte ${at}`)
      }
    })

    test(`read the digest at its offset and verify an empty payload, in no pieces too (${name})`, () => {
      const framed = Buffer.concat([Buffer.alloc(24, 0xaa), digestOf(id, payload)])
      assert.equal(verifyDigest(id, payload, framed, 24), true)
      assert.equal(verifyDigest(id, payload, framed, 0), false)
      const empty = digestOf(id, new Uint8Array(0))
      assert.equal(verifyDigest(id, new Uint8Array(0), empty, 0), true)
      assert.equal(verifyDigestOfViews(id, [], empty, 0), true)
      assert.equal(verifyDigestOfViews(id, [new Uint8Array(0), new Uint8Array(0)], empty, 0), true)
    })
  }

  test('accept anything under none, and nothing under an unknown id', () => {
    const none = Buffer.alloc(0)
    assert.equal(verifyDigest(ChecksumId.none, payload, none, 0), true)
    assert.equal(verifyDigestOfViews(ChecksumId.none, pieces(payload, [10]), none, 0), true)
    const digest = Buffer.alloc(16)
    assert.equal(verifyDigest(9, payload, digest, 0), false)
    assert.equal(verifyDigestOfViews(9, pieces(payload, [10]), digest, 0), false)
  })
})
