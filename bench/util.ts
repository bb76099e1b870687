/** Small helpers shared by the benchmark: logging, medians, byte touching, timeouts. */
import { readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import type { Readable } from 'node:stream'
export { prng } from '../lib/prng.js'

export const KiB = 1024
export const MiB = 1024 * KiB
export const GiB = 1024 * MiB

/** The consumer touches one byte per page of this size (at absolute offsets, so the result does not depend on chunking). */
export const TOUCH_PAGE = 4096

const started = performance.now()

/** Seconds since the benchmark started. */
export function elapsed(): number {
  return (performance.now() - started) / 1000
}

/** A progress line on stderr. */
export function log(msg: string): void {
  process.stderr.write(`[${elapsed().toFixed(1).padStart(6)} s] ${msg}\n`)
}

/** Something broke (wrong byte count, a process failed): the benchmark exits non-zero. */
export class BenchError extends Error {
  override name = 'BenchError'
}

export function fail(msg: string): never {
  throw new BenchError(msg)
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** (max − min) / median: how much the repeats of one figure disagree. */
export function spread(xs: readonly number[]): number {
  if (xs.length < 2) return 0
  return (Math.max(...xs) - Math.min(...xs)) / median(xs)
}

/**
 * Counts bytes and xors one byte per TOUCH_PAGE at absolute offsets. Every
 * Node contender runs its bytes through one of these, so all of them touch
 * the data the same way, and the xor is a cheap check that the bytes are right.
 */
export class Toucher {
  bytes = 0
  xor = 0
  touch(chunk: Uint8Array): void {
    let i = (TOUCH_PAGE - (this.bytes % TOUCH_PAGE)) % TOUCH_PAGE
    for (; i < chunk.length; i += TOUCH_PAGE) this.xor ^= chunk[i]!
    this.bytes += chunk.length
  }
}

/** The Toucher's xor of a whole buffer. */
export function xorPages(buf: Uint8Array): number {
  let x = 0
  for (let i = 0; i < buf.length; i += TOUCH_PAGE) x ^= buf[i]!
  return x
}

/** Consume a Readable through 'data' events with a Toucher; resolves at 'end'. */
export function consume(stream: Readable): Promise<Toucher> {
  return new Promise((resolve, reject) => {
    const t = new Toucher()
    stream.on('data', (chunk: Buffer) => t.touch(chunk))
    stream.once('error', reject)
    stream.once('end', () => resolve(t))
  })
}

/** Check what a contender read against what the file holds. */
export function checkRead(what: string, got: { bytes: number; xor: number }, want: { size: number; xor: number }): void {
  if (got.bytes !== want.size) fail(`${what}: read ${got.bytes} bytes, expected ${want.size}`)
  if (got.xor !== want.xor) fail(`${what}: wrong bytes (page xor ${got.xor}, expected ${want.xor})`)
}

/** Reject if `p` takes longer than `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what}: no result within ${(ms / 1000).toFixed(0)} s`)), ms)
  })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

export function now(): number {
  return performance.now()
}

/** "+26.7 ms", "−0.4 ms": the sign of the figure as shown, so never "−0.0". */
export function signedMs(ms: number): string {
  const d = Number(ms.toFixed(1))
  return `${d < 0 ? '−' : '+'}${Math.abs(d).toFixed(1)} ms`
}

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`
  if (n >= KiB) return `${(n / KiB).toFixed(1)} KiB`
  return `${n} B`
}


/** CPU time (user + system) of another process so far, ms (from /proc; clock ticks of 10 ms). */
function cpuOfPid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}

export interface CpuUse {
  /** This process (the client side of in-process contenders), ms. */
  client: number
  /** The server process, ms (10 ms resolution); NaN without one. */
  server: number
}

/** Start counting CPU time of this process and (optionally) a server process. */
export function cpuMeter(serverPid?: number): () => CpuUse {
  const c0 = process.cpuUsage()
  const s0 = serverPid === undefined ? NaN : cpuOfPid(serverPid)
  return () => {
    const c = process.cpuUsage(c0)
    return { client: (c.user + c.system) / 1000, server: serverPid === undefined ? NaN : cpuOfPid(serverPid) - s0 }
  }
}
