/**
 * Option values shared by both CLIs (human sizes, counts, seconds) and their
 * exit codes. Free of commander: the client parses its arguments without it,
 * to start fast. A bad value throws a plain Error whose message says why.
 */

/** Exit codes of both commands. */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** Unit letters and their powers of 1024. */
const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/**
 * A number, then optionally K, M, G or T with an optional "i" and "B", in any
 * case; or a plain B. Units are powers of 1024 however they are spelled:
 * "4GB", "4Gb", "4GiB" and "4g" are all 4 × 2^30 bytes (a size here is never
 * in bits).
 */
const SIZE = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/i

/** A size with optional unit: 4096, 64KiB, 512MiB, 1.5G (units are powers of 1024). */
export function parseSize(value: string): number {
  const m = SIZE.exec(value.trim())
  if (!m) throw new Error(`not a size: ${JSON.stringify(value)} (try 4096, 64KiB, 512MiB, 2G)`)
  const unit = UNITS[(m[2] ?? '').toLowerCase()]!
  // 1.5G is whole; 0.1G rounds down to a byte; a bare 2.5 is no number of bytes.
  if (unit === 1 && !/^\d+$/.test(m[1]!)) throw new Error(`not a whole number of bytes: ${JSON.stringify(value)}`)
  const n = Math.floor(Number(m[1]) * unit)
  if (!Number.isSafeInteger(n)) throw new Error(`too large a size: ${JSON.stringify(value)}`)
  return n
}

/** A size the way a user types it: 1GiB, 256KiB, 1000 (the largest unit that divides it exactly). */
export function formatSize(bytes: number): string {
  for (const [unit, n] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`
  }
  return String(bytes)
}

/** A byte count: plain digits, or a size with a unit. */
export function parseCount(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value)
    if (!Number.isSafeInteger(n)) throw new Error(`${value} is too large`)
    return n
  }
  return parseSize(value)
}

/** Seconds, fractions allowed: 0.5, 30, 600. */
export function parseSeconds(value: string): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(value.trim())) throw new Error(`not a number of seconds: ${JSON.stringify(value)}`)
  return Number(value)
}

/** File permissions in octal: 600, 0660. */
export function parseOctal(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new Error(`not an octal file mode: ${JSON.stringify(value)} (try 600 or 660)`)
  return parseInt(value, 8)
}

export function parsePort(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) throw new Error(`not a port number: ${JSON.stringify(value)}`)
  return n
}
