/**
 * Option values shared by both CLIs (human sizes, counts, seconds) and their
 * exit codes. Free of commander: the client parses its arguments without it,
 * to start fast. A bad value throws a plain Error whose message says why.
 */
import { createRequire } from 'node:module'

/** Exit codes of both commands. */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** Loaded on first use: most runs of the client never parse a size. */
const parseHumanSize = (value: string): number => (createRequire(import.meta.url)('filesize-parser') as (s: string) => number)(value)

/** A size with optional unit: 4096, 64KiB, 512MiB, 2G (units are powers of 1024). */
export function parseSize(value: string): number {
  let n: number
  try {
    n = parseHumanSize(value)
  } catch {
    throw new Error(`not a size: ${JSON.stringify(value)} (try 4096, 64KiB, 512MiB, 2G)`)
  }
  if (!Number.isFinite(n) || n < 0) throw new Error(`not a size: ${JSON.stringify(value)}`)
  return Math.floor(n)
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
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new Error(`not a number of seconds: ${JSON.stringify(value)}`)
  return n
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
