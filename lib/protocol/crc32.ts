/**
 * CRC-32 of payloads (IEEE, the sums zlib gives). Node's zlib.crc32 runs at
 * ~5.5 GB/s here and is a third of a hot read's client CPU; @node-rs/crc32
 * (SIMD, an optional dependency) gives the same sums at ~13 GB/s. Loading
 * it costs 3–6 ms, more than summing a small file, and the client CLI's
 * start-up is its budget: so a process starts on zlib and switches once it
 * has summed SWITCH_AFTER bytes, or when it asks (the server, at start).
 * Where the package cannot load (a platform it has no binary for) or gives
 * a wrong sum, zlib stays.
 */
import { createRequire } from 'node:module'
import { crc32 as zlibCrc32 } from 'node:zlib'
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:crc32')

type Crc32 = (data: Uint8Array, value?: number) => number

const FAST_PACKAGE = '@node-rs/crc32'
/** The fast one has paid for its loading after ~50 MB; a small read never loads it. */
const SWITCH_AFTER = 64 * 1024 * 1024

let impl: Crc32 = zlibCrc32
let implName = 'zlib'
/** Bytes summed on zlib so far; -1 once a switch has been tried. */
let summed = 0

export function crc32(data: Uint8Array, value = 0): number {
  // zlib takes an empty view with no memory behind it (randomBytes(0)) as "start over": 0, not `value`.
  if (data.length === 0) return value >>> 0
  if (summed >= 0 && (summed += data.length) > SWITCH_AFTER) useFastCrc32()
  return impl(data, value)
}

/** Which implementation sums now: 'zlib' or the package's name. */
export function crc32Implementation(): string {
  return implName
}

/**
 * Switch to the SIMD implementation now (once per process); true if it is
 * in use. `pkg` is for tests: a module exporting `crc32(data, value)`.
 */
export function useFastCrc32(pkg = FAST_PACKAGE): boolean {
  if (summed < 0 && pkg === FAST_PACKAGE) return implName === FAST_PACKAGE
  if (pkg === FAST_PACKAGE) summed = -1
  let fast: Crc32
  try {
    fast = (createRequire(import.meta.url)(pkg) as { crc32: Crc32 }).crc32
  } catch (err) {
    debug('%s not loaded, staying on zlib: %s', pkg, (err as Error).message)
    return false
  }
  if (!agrees(fast)) {
    debug('%s gives other sums than zlib, staying on zlib', pkg)
    return false
  }
  impl = fast
  implName = pkg
  debug('payload sums by %s', pkg)
  return true
}

/** A quick proof that `fast` is the same CRC-32: the standard check value, a seed, and a long run. */
function agrees(fast: Crc32): boolean {
  try {
    const long = Buffer.alloc(4099)
    for (let i = 0; i < long.length; i++) long[i] = (i * 131) >>> 3
    // Views into a larger buffer, at an odd offset, as the client's receive buffer hands them over.
    const view = new Uint8Array(long.buffer, long.byteOffset + 3, 4000)
    return fast(Buffer.from('123456789')) === 0xcbf43926 && fast(long, 12345) === zlibCrc32(long, 12345) && fast(view, 7) === zlibCrc32(view, 7)
  } catch {
    return false
  }
}
