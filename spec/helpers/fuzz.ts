/**
 * What the seeded fuzz specs share: the seed (random per run, FUZZ_SEED=<seed>
 * replays one), a small seeded generator, and watchers for what must never
 * happen (uncaught errors, file handles left to the garbage collector).
 * FUZZ_KNOWN_BUGS=0 leaves out the inputs that once triggered bugs.
 */
import { randomInt } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TestContext } from 'node:test'
import { encodeFrame, type Frame } from '../../lib/protocol/frame.js'
import { encodeHeader } from '../../lib/protocol/header.js'

export const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : randomInt(2 ** 32)
export const KNOWN_BUGS = process.env.FUZZ_KNOWN_BUGS !== '0' // the bugs they found are fixed: exercise their inputs too

/** mulberry32, with the few draws a fuzzer needs. */
export class Rng {
  #a: number
  constructor(seed: number) {
    this.#a = seed >>> 0
  }
  next(): number {
    this.#a = (this.#a + 0x6d2b79f5) >>> 0
    let t = this.#a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }
  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1)
  }
  chance(p: number): boolean {
    return this.next() < p
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
  /** An independent generator, for work that runs concurrently. */
  fork(): Rng {
    return new Rng(this.int(2 ** 32))
  }
}

/**
 * Record uncaught exceptions and unhandled rejections while the test runs,
 * and (in `leaked`) file handles closed by the garbage collector: handles
 * someone forgot to close.
 */
export function watchProcess(t: Pick<TestContext, 'after'>): string[] & { leaked: string[] } {
  // `leaked` is not enumerable, so `assert.deepEqual(seen, [])` looks at the uncaught errors only.
  const seen = Object.defineProperty([] as string[], 'leaked', { value: [] as string[], enumerable: false }) as string[] & { leaked: string[] }
  const onException = (err: unknown) => seen.push(`uncaughtException: ${(err as Error)?.stack ?? String(err)}`)
  const onRejection = (reason: unknown) => seen.push(`unhandledRejection: ${(reason as Error)?.stack ?? String(reason)}`)
  const onWarning = (w: Error) => {
    if (/^Closing file descriptor \d+ on garbage collection/.test(w.message)) seen.leaked.push(w.message)
  }
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  process.on('warning', onWarning)
  t.after(() => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
    process.off('warning', onWarning)
  })
  return seen
}

/** `p`, or a rejection naming `what` after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no outcome within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Poll `pred` until it holds; false if it still does not after `ms`. */
export async function eventually(pred: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

export function frameBytes(frame: Frame, checksum: number): Buffer {
  return Buffer.concat(encodeFrame(frame, checksum))
}

/** A header with any length field (valid CRC), for frames that lie about their size. */
export function headerOnly(h: { type: number; id: number; seq: number; length: number; checksum: number; epoch?: number }): Buffer {
  return encodeHeader({ epoch: 0, ...h })
}

export function countBy(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n)
}

export function show(map: Map<string, number>): string {
  return [...map].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
}

export function nested(depth: number, leaf: string): string {
  return '['.repeat(depth) + leaf + ']'.repeat(depth)
}

/** What a promise came to, without throwing. */
export type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

export function settle<T>(p: Promise<T>): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  )
}
