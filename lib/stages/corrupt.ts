/**
 * Fault injection: a Transform that damages bytes passing through it, at a
 * given rate, reproducibly (seeded). Put it between any two byte stages or
 * around a socket to prove that receivers never hand on a damaged byte.
 * It never modifies its input buffers (they may be cached file blocks).
 */
import createDebug from '../debug.js'
import { Transform } from 'node:stream'
import { prng } from '../prng.js'

export { prng }

const debug = createDebug('cacheserv:corrupt')

export type CorruptMode = 'flip' | 'drop' | 'duplicate' | 'garbage' | 'mixed'
const MODES: Exclude<CorruptMode, 'mixed'>[] = ['flip', 'drop', 'duplicate', 'garbage']

export interface CorruptOptions {
  /** Expected faults per byte passed (e.g. 1e-5: about one every 100 KB). */
  rate: number
  /** PRNG seed; the same seed and input give the same damage. Default 1. */
  seed?: number
  /** flip one bit, drop a run, duplicate a run, insert a run of random bytes, or any of these. Default 'flip'. */
  mode?: CorruptMode
  /** Longest run dropped, duplicated or inserted. Default 64. */
  maxRun?: number
  /** Bytes at the start of the stream left alone (e.g. a handshake). Default 0. */
  skip?: number
}

export interface CorruptStats {
  faults: number
  flipped: number
  dropped: number
  duplicated: number
  inserted: number
}

export type Corrupter = Transform & { stats: CorruptStats }


export function corrupt({ rate, seed = 1, mode = 'flip', maxRun = 64, skip = 0 }: CorruptOptions): Corrupter {
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`rate must be from 0 to 1, got ${rate}`)
  const random = prng(seed)
  const stats: CorruptStats = { faults: 0, flipped: 0, dropped: 0, duplicated: 0, inserted: 0 }
  // Bytes until the next fault: geometric gaps give `rate` faults per byte on average.
  const gap = () => (rate === 0 ? Infinity : rate === 1 ? 0 : Math.floor(Math.log(1 - random()) / Math.log(1 - rate)))
  let untilFault = skip + gap()
  const run = () => 1 + Math.floor(random() * maxRun)

  // node:stream, not through2: the client loads this, and must start fast (see deframer.ts).
  const stream = new Transform({ transform: damage })
  function damage(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    if (untilFault >= chunk.length) {
      untilFault -= chunk.length
      return cb(null, chunk)
    }
    const out: Buffer[] = []
    let pos = 0
    while (untilFault < chunk.length - pos) {
      const at = pos + untilFault
      out.push(chunk.subarray(pos, at))
      const kind = mode === 'mixed' ? MODES[Math.floor(random() * MODES.length)] : mode
      stats.faults++
      switch (kind) {
        case 'flip': {
          const b = Buffer.from(chunk.subarray(at, at + 1)) // a copy: never touch the input
          b[0] ^= 1 << Math.floor(random() * 8)
          out.push(b)
          stats.flipped++
          pos = at + 1
          break
        }
        case 'drop': {
          const n = Math.min(run(), chunk.length - at)
          stats.dropped += n
          pos = at + n
          break
        }
        case 'duplicate': {
          const n = Math.min(run(), chunk.length - at)
          out.push(chunk.subarray(at, at + n), chunk.subarray(at, at + n))
          stats.duplicated += n
          pos = at + n
          break
        }
        case 'garbage': {
          const n = run()
          const junk = Buffer.allocUnsafe(n)
          for (let i = 0; i < n; i++) junk[i] = Math.floor(random() * 256)
          out.push(junk)
          stats.inserted += n
          pos = at
          break
        }
      }
      debug('%s at byte %d', kind, at)
      untilFault = kind === 'garbage' ? gap() + 1 : gap()
    }
    untilFault -= chunk.length - pos
    out.push(chunk.subarray(pos))
    cb(null, Buffer.concat(out))
  }
  return Object.assign(stream, { stats })
}
