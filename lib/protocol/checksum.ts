import type { Hash } from 'node:crypto'
import { createRequire } from 'node:module'
import { ChecksumId, type ChecksumName, DIGEST_SIZE } from './constants.js'
import { memoCrc32 } from './crc-memo.js'
import { crc32 } from './crc32.js'

/** md5 is rare (crc32 is the default): node:crypto costs ~9 ms of client start-up, so it loads on first use. */
function md5(): Hash {
  return (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).createHash('md5')
}

export function checksumId(name: ChecksumName): number {
  return ChecksumId[name]
}

export function checksumName(id: number): ChecksumName | undefined {
  return (Object.keys(ChecksumId) as ChecksumName[]).find((n) => ChecksumId[n] === id)
}

export function digestSize(id: number): number {
  const size = DIGEST_SIZE[id]
  if (size === undefined) throw new RangeError(`unknown checksum id ${id}`)
  return size
}

/** Write the digest of `payload` under algorithm `id` into `out` at `offset`. */
export function writeDigest(id: number, payload: Uint8Array, out: Buffer, offset: number): void {
  if (id === ChecksumId.crc32) out.writeUInt32BE(memoCrc32(payload), offset)
  else if (id === ChecksumId.md5) md5().update(payload).digest().copy(out, offset)
  else if (id !== ChecksumId.none) throw new RangeError(`unknown checksum id ${id}`)
}

/** verifyDigest over a payload in pieces (their concatenation), without joining them. */
export function verifyDigestOfViews(id: number, views: readonly Uint8Array[], digest: Buffer, offset: number): boolean {
  if (views.length === 1) return verifyDigest(id, views[0], digest, offset)
  if (id === ChecksumId.crc32) {
    let sum = 0
    for (const v of views) sum = crc32(v, sum)
    return digest.readUInt32BE(offset) === sum
  }
  if (id === ChecksumId.md5) {
    const hash = md5()
    for (const v of views) hash.update(v)
    return hash.digest().equals(digest.subarray(offset, offset + 16))
  }
  return id === ChecksumId.none
}

/** True when `digest[offset…]` is the digest of `payload` under algorithm `id`. */
export function verifyDigest(id: number, payload: Uint8Array, digest: Buffer, offset: number): boolean {
  if (id === ChecksumId.crc32) return digest.readUInt32BE(offset) === crc32(payload)
  if (id === ChecksumId.md5) {
    return md5().update(payload).digest().equals(digest.subarray(offset, offset + 16))
  }
  return id === ChecksumId.none
}
