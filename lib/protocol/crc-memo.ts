/**
 * crc32 of views into buffers that never change again (cached blocks),
 * remembered per buffer: a hot page is summed once, not once per read. On a
 * hot read the server otherwise spends a fifth of its CPU on crc32.
 *
 * Only buffers handed to `markImmutable` are remembered, by their own
 * ArrayBuffer (a WeakMap: the memo goes when the block does); any other
 * payload is summed every time.
 */
import { crc32 } from './crc32.js'

/** Views remembered per buffer at most: pages shrink after NACKs, and a damaged link must not grow this without bound. */
const MAX_VIEWS = 64
/** Views are keyed by offset * 2^25 + length (length ≤ MAX_PAYLOAD = 2^24); offsets this large are not remembered. */
const MAX_OFFSET = 2 ** 28

/** A buffer's memo: null until one of its views is summed (most cached blocks of small files never are twice). */
const memos = new WeakMap<ArrayBufferLike, Map<number, number> | null>()

/** Promise that `buf`'s bytes never change again. `buf` must own its ArrayBuffer (Buffer.allocUnsafeSlow). */
export function markImmutable(buf: Buffer): void {
  if (buf.byteOffset === 0 && buf.byteLength === buf.buffer.byteLength) memos.set(buf.buffer, null)
}

export function memoCrc32(view: Uint8Array): number {
  let memo = memos.get(view.buffer)
  if (memo === undefined || view.byteOffset >= MAX_OFFSET) return crc32(view)
  if (memo === null) memos.set(view.buffer, (memo = new Map()))
  const key = view.byteOffset * 2 ** 25 + view.byteLength
  let sum = memo.get(key)
  if (sum === undefined) {
    sum = crc32(view)
    if (memo.size < MAX_VIEWS) memo.set(key, sum)
  }
  return sum
}
