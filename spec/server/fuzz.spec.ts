/**
 * Seeded, bounded protocol fuzz:
 *
 *  a. a live server fed thousands of random and mutated request lines and
 *     upload frames over raw sockets, while a well-behaved client keeps
 *     reading byte-exactly;
 *  b. the client's frame parsers (FrameDecoder, strict and resyncing, and the
 *     resyncing deframer) fed random buffers and damaged frame streams;
 *  c. a real Client against a fake server that answers with valid, damaged
 *     and nonsensical frames.
 *
 * The seed is random per run and shown in every test title; replay a run with
 * FUZZ_SEED=<seed>. The inputs that once triggered bugs (the regression
 * tests at the end) are part of the mix; FUZZ_KNOWN_BUGS=0 leaves them out.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomInt } from 'node:crypto'
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { type Client, connect } from '../../lib/client/client.js'
import { CacheservError } from '../../lib/errors.js'
import { FrameType, HEADER_SIZE, MAX_PAYLOAD } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { encodeFrame, type Frame, jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { encodeHeader } from '../../lib/protocol/header.js'
import { createDeframer, type Deframed } from '../../lib/stages/deframer.js'
import { startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { loopbackServer } from '../helpers/loopback.js'
import { connectTo, startServer } from '../helpers/server.js'
import { fdCount } from '../helpers/fds.js'

const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : randomInt(2 ** 32)
const KNOWN_BUGS = process.env.FUZZ_KNOWN_BUGS !== '0' // the bugs they found are fixed: exercise their inputs too

// ─── helpers ────────────────────────────────────────────────────────────────

/** mulberry32, with the few draws a fuzzer needs. */
class Rng {
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
function watchProcess(t: Pick<TestContext, 'after'>): string[] & { leaked: string[] } {
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
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
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
async function eventually(pred: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!pred()) {
    if (Date.now() > deadline) return false
    await sleep(20)
  }
  return true
}

function frameBytes(frame: Frame, checksum: number): Buffer {
  return Buffer.concat(encodeFrame(frame, checksum))
}

/** A header with any length field (valid CRC), for frames that lie about their size. */
function headerOnly(h: { type: number; id: number; seq: number; length: number; checksum: number; epoch?: number }): Buffer {
  return encodeHeader({ epoch: 0, ...h })
}

function countBy(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n)
}

function show(map: Map<string, number>): string {
  return [...map].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
}

function nested(depth: number, leaf: string): string {
  return '['.repeat(depth) + leaf + ']'.repeat(depth)
}


// ─── a. a live server ───────────────────────────────────────────────────────

const PATHS = [
  'a.txt', 'b.bin', 'empty.txt', 'sub', 'sub/', 'sub/c.bin', 'sub/deeper/d.txt', '', '.', './a.txt', 'sub//c.bin', 'sub/./deeper/d.txt',
  'nope', 'sub/nope', 'a.txt/x', 'escape', 'escape/passwd', 'escape/hostname', 'link-a', 'dangling', 'fifo', 'scratch', 'scratch/w0.bin', 'scratch/new/w.bin',
  '..', '../a.txt', 'sub/../../etc/passwd', '/etc/passwd', '/', 'sub\\c.bin', 'a\u0000.txt', '日本語/ファイル.bin', '\u202etxt.exe', '🙂', '%2e%2e/x',
] as const

const EDGE_NUMBERS = [0, -0, -1, 1, 1.5, -1.5, 0.1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, Number.MIN_VALUE, 1e-7, 255, 256, 1024, 65536]

const EDGE_STRINGS = ['', ' ', 'NaN', 'Infinity', '-Infinity', '-1', '1e3', '0x10', ' 1', '1 ', 'null', 'true', 'undefined', '[object Object]', '__proto__', 'constructor', '\u0000', '\n', '\r', '\ud800', '\udfff', '\ufeff', '\u2028']

/** JSON text no JSON.stringify makes: substituted into a line for a field's value. */
const RAW_TOKENS = ['NaN', 'Infinity', '-Infinity', '1e999', '-1e999', '-0', '1.0', '1e2', '4294967296', '4294967295', '9007199254740993', '0.5', '"\\ud800"', '"\\u0000"', 'undefined', '01', '+1', '.5', '0x10', '"', '{', ']', '"\\uZZZZ"', '1e', '--1']

const OPS = ['read', 'read', 'read', 'ls', 'stat', 'stats', 'warm', 'evict', 'write', 'cancel', 'nack', 'nack', 'READ', 'rea', 'frobnicate', '', 'hello', 'constructor', '__proto__', 'toString']

function rawValue(raws: Map<string, string>, text: string): string {
  const mark = `@@RAW${raws.size}@@`
  raws.set(mark, text)
  return mark
}

function withRaws(json: string, raws: Map<string, string>): string {
  for (const [mark, raw] of raws) json = json.replace(`"${mark}"`, () => raw)
  return json
}

function mutatePath(r: Rng, path: string): string {
  switch (r.int(9)) {
    case 0:
      return `${path}/..`
    case 1:
      return `../${path}`
    case 2: {
      const at = r.int(path.length + 1)
      return path.slice(0, at) + r.pick(['\u0000', '\\', '/', '..', '.', '\ud800', '%00', '\u00e9', '\t']) + path.slice(at)
    }
    case 3:
      return `${path}/${'x'.repeat(r.pick([254, 255, 256, 300]))}`
    case 4:
      return 'a/'.repeat(r.range(100, 2100)) // up to ~4 KiB of segments
    case 5:
      return '/'.repeat(r.range(1, 50)) + path
    case 6:
      return path.toUpperCase()
    case 7:
      return path + '/'.repeat(r.range(1, 5)) + '.'
    default:
      return path.split('').reverse().join('')
  }
}

function longString(r: Rng): string {
  const n = r.range(1000, 60_000)
  if (r.chance(0.5)) return r.pick(['a', '/', '.', '\u00e9', '../']).repeat(Math.floor(n / 3))
  let s = ''
  while (s.length < n / 2) s += String.fromCharCode(32 + r.int(0x2fff))
  return s
}

/**
 * A value of any JSON type, often a wrong or extreme one. JSON text no
 * JSON.stringify would make (deep nesting, NaN…) is registered in `raws`
 * under a marker string, substituted into the line later; `deep` allows
 * nesting thousands of levels.
 */
function weird(r: Rng, deep: boolean, raws: Map<string, string>, depth = 0): unknown {
  switch (r.int(13)) {
    case 0:
      return r.pick(EDGE_NUMBERS)
    case 1:
      return r.int(2 ** 32) - 2 ** 31
    case 2:
      return r.pick(EDGE_STRINGS)
    case 3:
      return r.chance(0.3) ? longString(r) : r.pick(EDGE_STRINGS)
    case 4:
      return r.pick([true, false, null])
    case 5:
      return depth < 3 ? Array.from({ length: r.int(5) }, () => weird(r, deep, raws, depth + 1)) : []
    case 6:
      return depth < 3 ? Object.fromEntries(Array.from({ length: r.int(5) }, () => [r.pick(['id', 'op', 'path', 'offset', 'length', 'x', '__proto__']), weird(r, deep, raws, depth + 1)])) : {}
    case 7: {
      // Deep nesting: JSON.parse takes any depth, but code that serialises or walks the value may not.
      const levels = deep ? r.pick([10, 100, 1000, 5000, 20_000]) : r.pick([10, 100, 300])
      return rawValue(raws, r.chance(0.5) ? nested(levels, '1') : '{"a":'.repeat(levels) + '1' + '}'.repeat(levels))
    }
    case 8:
    case 9:
      return r.pick(PATHS)
    case 10:
      return mutatePath(r, r.pick(PATHS))
    case 11:
      return r.int(200_000)
    default:
      return r.int(40) + 1
  }
}

interface Input {
  kind: string
  chunks: Buffer[]
  /** Ids this input speaks for (attribution of an error frame). */
  ids: number[]
  desc: string
  /** What to do with the connection once the input is (partly) out. */
  then?: 'destroy' | 'end'
  /** Send only this many bytes of it before `then`. */
  cut?: number
}

/** Write requests in an input (roughly: mutated lines may hide some). */
function writesIn(input: Input): number {
  return input.chunks.reduce((n, c) => n + (c.toString('latin1').match(/"op":"write"/g)?.length ?? 0), 0)
}

/**
 * Write requests one fuzzing connection may send: 32 of them waiting for
 * their frames deadlock the connection (see the todo tests), so connections
 * are retired before, unless the known bugs are exercised.
 */
const MAX_WRITES_PER_CONN = KNOWN_BUGS ? Infinity : 20

/**
 * A write's temporary file is named after the target plus 28 bytes, so a
 * name over 227 bytes fails with EINTERNAL (see the todo test): shorten it
 * unless the known bugs are exercised.
 */
function writablePath(path: unknown): unknown {
  if (KNOWN_BUGS || typeof path !== 'string') return path
  return path.split('/').map((seg) => (Buffer.byteLength(seg) > 200 ? seg.slice(0, 100) : seg)).join('/')
}

function pickId(r: Rng): number {
  return r.chance(0.9) ? r.range(1, 40) : r.pick([1, 2 ** 32 - 1, 2 ** 31, 0xfffffff0 + r.int(15)])
}

function baseRequest(r: Rng): Record<string, unknown> {
  const op = r.pick(OPS)
  const id = pickId(r)
  const path = r.chance(0.85) ? r.pick(PATHS) : mutatePath(r, r.pick(PATHS))
  switch (op) {
    case 'read': {
      const req: Record<string, unknown> = { id, op, path }
      if (r.chance(0.4)) req.offset = r.pick([0, 1, 5, 100, 70_000, r.int(80_000)])
      if (r.chance(0.4)) req.length = r.pick([0, 1, 10, 65_536, r.int(80_000)])
      return req
    }
    case 'ls':
    case 'warm':
    case 'evict':
      return r.chance(0.2) ? { id, op } : { id, op, path }
    case 'stat':
      return { id, op, path }
    case 'write':
      return { id, op, path: r.chance(0.7) ? `scratch/w${r.int(4)}.bin` : path, length: r.int(3000) }
    case 'nack':
      return { id, op, seq: r.int(30), offset: r.pick([0, r.int(100_000)]), resync: r.range(1, 300) }
    case 'cancel':
      return { id, op }
    default:
      return { id, op, path }
  }
}

function mutateLine(r: Rng, line: Buffer): Buffer {
  switch (r.int(9)) {
    case 0:
      return line.subarray(0, r.int(line.length)) // truncated
    case 1: {
      const b = Buffer.from(line)
      if (b.length > 0) b[r.int(b.length)] ^= 1 << r.int(8)
      return b
    }
    case 2: {
      const at = r.int(line.length + 1)
      return Buffer.concat([line.subarray(0, at), r.bytes(r.range(1, 20)), line.subarray(at)])
    }
    case 3: {
      const at = r.int(line.length + 1)
      return Buffer.concat([line.subarray(0, at), line.subarray(at + r.range(1, 10))])
    }
    case 4:
      return Buffer.concat([line, line]) // two objects on one line
    case 5:
      return Buffer.concat([Buffer.from(r.pick([' ', '\t', ' \t ', '\u00a0', '\ufeff'])), line, Buffer.from(r.pick([' ', '\r', '\t']))])
    case 6: {
      const at = r.int(line.length + 1)
      return Buffer.concat([line.subarray(0, at), Buffer.from('\n'), line.subarray(at)]) // split in two lines
    }
    case 7: {
      // Bytes that are not UTF-8, or a NUL, or the first byte of a frame, somewhere in the line.
      const bad = Buffer.from(r.pick([[0x00], [0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc5]]))
      const at = r.int(line.length + 1)
      return Buffer.concat([line.subarray(0, at), bad, line.subarray(at + bad.length)])
    }
    default:
      return line
  }
}

/** A request line: a plausible request with some fields made wrong. */
function mutatedRequest(r: Rng): Input {
  const req = baseRequest(r)
  const raws = new Map<string, string>()
  const fields = ['id', 'op', 'path', 'offset', 'length', 'seq', 'resync', '__proto__', 'constructor', 'extra']
  for (let i = r.int(4); i > 0; i--) {
    const field = r.chance(0.7) ? r.pick(Object.keys(req)) : r.pick(fields)
    if (r.chance(0.2)) {
      req[field] = rawValue(raws, r.pick(RAW_TOKENS))
    } else if (r.chance(0.1)) {
      delete req[field]
    } else {
      req[field] = weird(r, true, raws)
    }
  }
  if (req.op === 'write') req.path = writablePath(req.path)
  const text = withRaws(JSON.stringify(req), raws)
  let line: Buffer = Buffer.from(text)
  if (r.chance(0.25)) line = mutateLine(r, line)
  const ending = r.pick(['\n', '\n', '\n', '\r\n', '\n\n', ' \n'])
  const id = typeof req.id === 'number' ? [req.id] : []
  return { kind: 'request', chunks: [Buffer.concat([line, Buffer.from(ending)])], ids: id, desc: text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text }
}

/** A write request and its upload frames, valid or damaged. */
function uploadInput(r: Rng): Input {
  const id = pickId(r)
  const checksum = r.pick([1, 1, 1, 2, 0])
  const data = r.bytes(r.pick([0, 1, r.int(3000), r.int(20_000)]))
  const path = r.chance(0.85) ? `scratch/u${r.int(6)}.bin` : r.chance(0.5) ? r.pick(PATHS) : mutatePath(r, r.pick(PATHS))
  const req: Record<string, unknown> = { id, op: 'write', path: writablePath(path) }
  if (r.chance(0.7)) req.length = r.chance(0.9) ? data.length : r.int(30_000)
  const page = r.range(1, 8192)
  const frames: Frame[] = []
  let seq = 1
  for (let at = 0; at < data.length; at += page) frames.push({ type: FrameType.DATA, id, seq: seq++, payload: data.subarray(at, at + page) })
  frames.push(jsonFrame(FrameType.END, id, seq, { length: data.length }))
  const mutations: string[] = []
  let withLine = true
  let bytes = frames.map((f) => frameBytes(f, checksum))
  for (let i = r.chance(0.5) ? r.range(1, 3) : 0; i > 0 && bytes.length > 0; i--) {
    const k = r.int(bytes.length)
    switch (r.int(12)) {
      case 0: {
        const b = Buffer.from(bytes[k])
        b[r.range(HEADER_SIZE, Math.max(HEADER_SIZE, b.length - 1))] ^= 1 << r.int(8)
        bytes[k] = b
        mutations.push(`flip payload/digest of frame ${k}`)
        break
      }
      case 1: {
        const b = Buffer.from(bytes[k])
        b[r.int(HEADER_SIZE)] ^= 1 << r.int(8)
        bytes[k] = b
        mutations.push(`flip header of frame ${k}`)
        break
      }
      case 2:
        bytes.splice(k, 1)
        mutations.push(`drop frame ${k}`)
        break
      case 3:
        bytes.splice(k, 0, bytes[k])
        mutations.push(`duplicate frame ${k}`)
        break
      case 4: {
        const f = frames[Math.min(k, frames.length - 1)]
        bytes[k] = frameBytes({ ...f, seq: r.pick([0, f.seq + 1, f.seq + 100, 2 ** 32 - 1]) }, checksum)
        mutations.push(`reseq frame ${k}`)
        break
      }
      case 5: {
        const f = frames[Math.min(k, frames.length - 1)]
        bytes[k] = frameBytes({ ...f, type: r.pick([0, 1, 2, 5, 6, 7, 8, 9, 255]) }, checksum)
        mutations.push(`retype frame ${k}`)
        break
      }
      case 6: {
        const endPayloads = ['not json', 'null', '[]', '"x"', '{"length":"5"}', '{"length":-1}', '{"length":1e999}', '{}', `{"length":${data.length + 1}}`, `{"length":${nested(100, '1')}}`]
        // A deeper one ends the write with EINTERNAL (see the todo test).
        if (KNOWN_BUGS) endPayloads.push(`{"length":${nested(20_000, '1')}}`)
        bytes[bytes.length - 1] = frameBytes({ type: FrameType.END, id, seq, payload: Buffer.from(r.pick(endPayloads)) }, checksum)
        mutations.push('bad END payload')
        break
      }
      case 7:
        bytes = bytes.map((_, j) => frameBytes({ ...frames[Math.min(j, frames.length - 1)], id: r.pick([0, (id + 1) >>> 0, 2 ** 32 - 1]) }, checksum))
        mutations.push('frames for another id')
        break
      case 8:
        bytes.splice(k, 0, headerOnly({ type: FrameType.DATA, id, seq: k + 1, length: r.pick([4 * 1024 * 1024 + 1, MAX_PAYLOAD, 2 ** 32 - 1]), checksum }))
        mutations.push('oversized header')
        break
      case 9:
        bytes.splice(k, 0, headerOnly({ type: FrameType.DATA, id, seq: k + 1, length: r.range(1, 100_000), checksum }), Buffer.from('{"id":1,"op":"stats"}\n'))
        mutations.push('header longer than what follows')
        break
      case 10:
        bytes.pop()
        mutations.push('no END')
        break
      default:
        withLine = false
        mutations.push('frames without their request line')
    }
  }
  const line = Buffer.from(JSON.stringify(req) + '\n')
  return { kind: 'upload', chunks: withLine ? [line, ...bytes] : bytes, ids: [id], desc: `write ${JSON.stringify(req)} in ${frames.length} frames, checksum ${checksum}; ${mutations.join('; ') || 'intact'}` }
}

function genInput(r: Rng): Input {
  const roll = r.int(1000)
  let input: Input
  if (roll < 560) input = mutatedRequest(r)
  else if (roll < 700) input = uploadInput(r)
  else if (roll < 760) {
    const b = r.bytes(r.range(1, 3000))
    input = { kind: 'random bytes', chunks: [b], ids: [], desc: `${b.length} random bytes from 0x${b.subarray(0, 8).toString('hex')}` }
  } else if (roll < 800) {
    // Looks like the start of an upload frame, but is not one.
    const b = Buffer.concat([Buffer.from([0xc5]), r.chance(0.5) ? Buffer.from([0x50]) : Buffer.alloc(0), r.bytes(r.range(0, 100))])
    input = { kind: '0xC5 garbage', chunks: [b], ids: [], desc: `0x${b.toString('hex').slice(0, 60)}` }
  } else if (roll < 840) {
    const text = JSON.stringify(baseRequest(r))
    const b = Buffer.from(text.slice(0, r.int(text.length)) + '\n')
    input = { kind: 'truncated line', chunks: [b], ids: [], desc: b.toString() }
  } else if (roll < 870) {
    const b = Buffer.from(r.pick(['\n', '\r\n', '   \n', '\t\t\r\n', '\n\n\n\n', ' \u00a0 \n', '\r\r\n', '\u2028\n']))
    input = { kind: 'whitespace', chunks: [b], ids: [], desc: JSON.stringify(b.toString()) }
  } else if (roll < 910) {
    // Control messages with garbage arguments, often for requests really in flight.
    const id = pickId(r)
    const raws = new Map<string, string>()
    const line = r.chance(0.5)
      ? { id, op: 'nack', seq: weird(r, true, raws), offset: weird(r, true, raws), resync: weird(r, true, raws) }
      : { id, op: 'cancel', seq: weird(r, true, raws) }
    const first = { id, op: 'read', path: r.pick(['b.bin', 'sub/c.bin', 'a.txt']) }
    const text = (r.chance(0.6) ? JSON.stringify(first) + '\n' : '') + withRaws(JSON.stringify(line), raws) + '\n'
    input = { kind: 'control', chunks: [Buffer.from(text)], ids: [id], desc: text }
  } else if (roll < 950) {
    // The same id twice, the first one still in flight.
    const id = pickId(r)
    const text = `${JSON.stringify({ id, op: 'read', path: 'b.bin' })}\n${JSON.stringify({ id, op: r.pick(['read', 'stat', 'write']), path: 'a.txt' })}\n`
    input = { kind: 'duplicate id', chunks: [Buffer.from(text)], ids: [id], desc: text }
  } else if (roll < 955) {
    const b = Buffer.from(`{"id":1,"op":"read","path":"${'x'.repeat(70_000)}"}\n`)
    input = { kind: 'over the line limit', chunks: [b], ids: [], desc: `${b.length}-byte line` }
  } else {
    // Pipelined valid requests, sent in small pieces.
    const text = Array.from({ length: r.range(2, 8) }, () => JSON.stringify({ id: pickId(r), op: r.pick(['read', 'stat', 'ls']), path: r.pick(['a.txt', 'b.bin', 'sub', 'sub/c.bin', 'empty.txt']) }) + '\n').join('')
    const b = Buffer.from(text)
    const chunks: Buffer[] = []
    for (let at = 0; at < b.length; ) {
      const n = r.range(1, 64)
      chunks.push(b.subarray(at, at + n))
      at += n
    }
    input = { kind: 'pipelined', chunks, ids: [], desc: text.slice(0, 300) }
  }
  if (r.chance(0.02)) {
    // Hang up part-way through the input.
    input.cut = r.int(input.chunks.reduce((n, c) => n + c.length, 0) + 1)
    input.then = 'destroy'
  } else if (r.chance(0.005)) input.then = 'end'
  return input
}

interface ServerFuzzStats {
  frames: number
  notIntact: number
  errorCodes: Map<string, number>
  /** ERROR frames with EINTERNAL, or unreadable ones, with the input that caused them. */
  bugs: string[]
}

/** One fuzzing connection: writes whatever it is given, decodes everything the server answers (strictly). */
class FuzzConn {
  readonly socket: net.Socket
  invalid: string | null = null
  gone = false
  budget: number
  writes = 0
  #inputs = new Map<number, string>()

  constructor(port: number, budget: number, stats: ServerFuzzStats) {
    this.budget = budget
    this.socket = net.connect({ host: '127.0.0.1', port })
    this.socket.on('error', () => {})
    this.socket.on('close', () => void (this.gone = true))
    const decoder = new FrameDecoder({
      onFrame: (f) => this.#onFrame(f, stats),
      onInvalid: (reason) => void (this.invalid = reason),
    })
    this.socket.on('data', (c: Buffer) => decoder.write(c))
  }

  /** Send (part of) an input; resolves when the socket has taken it or the connection is gone. */
  async send(input: Input): Promise<void> {
    for (const id of input.ids) this.#inputs.set(id, input.desc)
    let left = input.cut ?? Infinity
    for (const chunk of input.chunks) {
      if (this.gone || this.socket.destroyed) return
      const part = chunk.subarray(0, Math.min(chunk.length, left))
      left -= part.length
      if (part.length > 0 && !this.socket.write(part)) {
        // The server holds its input while 32 requests of this connection run (e.g. uploads waiting for frames): give up on it.
        const drained = await new Promise<boolean>((resolve) => {
          const done = (ok: boolean) => {
            clearTimeout(timer)
            this.socket.off('drain', onDrain).off('close', onClose)
            resolve(ok)
          }
          const onDrain = () => done(true)
          const onClose = () => done(false)
          const timer = setTimeout(() => done(false), 2000)
          this.socket.on('drain', onDrain).on('close', onClose)
        })
        if (!drained) return this.destroy()
      }
      if (left <= 0) break
    }
    if (input.then === 'destroy') this.destroy()
    else if (input.then === 'end') this.socket.end()
  }

  destroy(): void {
    this.socket.destroy()
    this.gone = true
  }

  #onFrame(f: ReceivedFrame, stats: ServerFuzzStats): void {
    stats.frames++
    if (!f.intact) stats.notIntact++
    if (f.type !== FrameType.ERROR) return
    let code: string
    try {
      code = String((JSON.parse(f.payload.toString('utf8')) as { code: unknown }).code)
    } catch {
      stats.bugs.push(`unreadable ERROR payload for id ${f.id}: ${f.payload.toString('utf8').slice(0, 200)}`)
      return
    }
    countBy(stats.errorCodes, code)
    if (code === 'EINTERNAL') stats.bugs.push(`EINTERNAL for id ${f.id}: ${f.payload.toString('utf8').slice(0, 300)}\n    input: ${this.#inputs.get(f.id) ?? '?'}`)
  }
}

const FUZZ_INPUTS = 3000
const CONNECTIONS = 6

describe('protocol fuzz against a live server', () => {
  test(`keeps serving a well-behaved client byte-exactly through ${FUZZ_INPUTS} random and mutated inputs on ${CONNECTIONS} raw connections (seed ${SEED})`, async (t) => {
    const uncaught = watchProcess(t)
    const r = new Rng(SEED ^ 0x5e4e4)
    const root = tempDir(t)
    writeFile(root, 'a.txt', 'hello\n')
    writeFile(root, 'b.bin', 70_000)
    writeFile(root, 'empty.txt', '')
    writeFile(root, 'sub/c.bin', 5000)
    writeFile(root, 'sub/deeper/d.txt', 'deep\n')
    const golden = writeFile(root, 'keep/golden.bin', 300_000)
    mkdirSync(join(root, 'scratch'))
    symlinkSync('/etc', join(root, 'escape'))
    symlinkSync('a.txt', join(root, 'link-a'))
    symlinkSync('nowhere', join(root, 'dangling'))
    // A symlink loop fails its requests with EINTERNAL (see the todo test).
    if (KNOWN_BUGS) symlinkSync('loop', join(root, 'loop'))
    execFileSync('mkfifo', [join(root, 'fifo')])
    const { server, url } = await startServer(t, { root, writable: true, pageSize: 16 * 1024 })
    const port = Number(/:(\d+)$/.exec(url)![1])

    const good = await connectTo(t, url)
    let checks = 0
    const check = async (when: string) => {
      await within(
        (async () => {
          assert.ok((await good.readFile('keep/golden.bin')).equals(golden), `golden.bin read byte-exactly ${when}`)
          const offset = r.int(golden.length)
          assert.ok((await good.readFile('keep/golden.bin', { offset, length: 20_000 })).equals(golden.subarray(offset, offset + 20_000)), `range at ${offset} ${when}`)
          assert.deepEqual((await good.ls('keep')).map((e) => [e.name, e.type]), [['golden.bin', 'file']], `ls ${when}`)
          assert.equal((await good.stat('keep/golden.bin')).size, golden.length, `stat ${when}`)
        })(),
        10_000,
        `the well-behaved client ${when}`,
      )
      checks++
    }
    await check('before the fuzz')
    const fdsBefore = fdCount()

    const stats: ServerFuzzStats = { frames: 0, notIntact: 0, errorCodes: new Map(), bugs: [] }
    const kinds = new Map<string, number>()
    const newConn = () => new FuzzConn(port, r.range(20, 400), stats)
    const conns = Array.from({ length: CONNECTIONS }, newConn)
    let opened = CONNECTIONS
    const invalid: string[] = []
    const retire = (c: FuzzConn) => {
      if (c.invalid) invalid.push(c.invalid)
    }
    const started = Date.now()
    for (let i = 0; i < FUZZ_INPUTS; i++) {
      const k = r.int(conns.length)
      let conn = conns[k]
      const input = genInput(r)
      if (conn.gone || conn.budget-- <= 0 || conn.writes + writesIn(input) > MAX_WRITES_PER_CONN) {
        if (!conn.gone) r.chance(0.5) ? conn.socket.end() : conn.destroy()
        retire(conn)
        conn = conns[k] = newConn()
        opened++
      }
      conn.writes += writesIn(input)
      countBy(kinds, input.kind)
      await conn.send(input)
      await new Promise((resolve) => setImmediate(resolve))
      if (i % 100 === 99) await check(`after input ${i + 1}`)
    }
    const fuzzMs = Date.now() - started

    // Hang up: half politely (the server finishes what it has, then closes), half abruptly.
    for (const c of conns) {
      if (r.chance(0.5)) c.socket.end()
      else c.destroy()
    }
    const settled = await eventually(() => server.stats().connections === 1, 10_000)
    for (const c of conns) {
      c.destroy()
      retire(c)
    }
    assert.ok(settled, `connections back to the well-behaved one within 10 s; still open: ${server.stats().connections}`)
    await check('after the fuzz')
    const tmpLeft = () => execFileSync('find', [root, '-name', '*.cacheserv-tmp']).toString().trim()
    assert.ok(await eventually(() => tmpLeft() === '', 5000), `temporary upload files left behind: ${tmpLeft()}`)
    // A connection closed with a response in flight leaves its job's file open until the GC (see the todo test).
    const fdsBack = await eventually(() => fdCount() <= fdsBefore, 5000)
    if (KNOWN_BUGS) assert.ok(fdsBack, `file descriptors back to ${fdsBefore} (now ${fdCount()})`)
    else if (!fdsBack || uncaught.leaked.length > 0) t.diagnostic(`known bug: ${fdCount() - fdsBefore} file descriptors still open, ${uncaught.leaked.length} closed by the GC`)

    t.diagnostic(`${FUZZ_INPUTS} inputs in ${fuzzMs} ms over ${opened} connections: ${show(kinds)}`)
    t.diagnostic(`${stats.frames} frames back; ERROR codes: ${show(stats.errorCodes)}; ${checks} well-behaved checks`)
    assert.deepEqual(invalid, [], 'the server only ever sends valid frame headers')
    assert.equal(stats.notIntact, 0, 'the server only ever sends intact payloads')
    assert.deepEqual(stats.bugs, [], 'no request failed on a server bug (EINTERNAL)')
    assert.deepEqual(uncaught, [], 'no uncaught exception or unhandled rejection')
    if (KNOWN_BUGS) assert.deepEqual(uncaught.leaked, [], 'no file handle left to the garbage collector')
  })
})

// ─── b. the client's frame parsers ──────────────────────────────────────────

interface Known {
  frame: ReceivedFrame
  /** Byte position of the frame in the stream, and its size there. */
  pos: number
  size: number
  /** Inside another frame's payload. */
  inner: boolean
}

/** A stream of frames with distinct seqs, sometimes frames inside payloads, sometimes magic bytes sprinkled in. */
function frameStream(r: Rng): { bytes: Buffer; known: Map<number, Known>; top: Known[] } {
  const known = new Map<number, Known>()
  const top: Known[] = []
  const parts: Buffer[] = []
  let nextSeq = 0
  /** A frame's bytes; `inner` is a frame placed in its payload, `innerAt` where (from the frame's start). */
  const make = (isInner: boolean): { bytes: Buffer; k: Known; inner?: { bytes: Buffer; k: Known }; innerAt: number } => {
    const checksum = r.pick([1, 1, 2, 0])
    let payload: Buffer = r.bytes(r.pick([0, 1, 3, 4, 23, 24, 25, 100, r.int(2000), r.int(2000), r.int(20_000), r.chance(0.1) ? 70_000 : 10]))
    if (r.chance(0.2)) for (let i = r.range(1, 5); i > 0 && payload.length > 1; i--) payload.writeUInt16BE(0xc550, r.int(payload.length - 1))
    let inner: { bytes: Buffer; k: Known } | undefined
    let at = 0
    if (!isInner && checksum !== 0 && r.chance(0.1)) {
      inner = make(true)
      at = r.int(payload.length + 1)
      payload = Buffer.concat([payload.subarray(0, at), inner.bytes, payload.subarray(at)])
    }
    const frame: ReceivedFrame = { type: r.range(0, 255), id: r.int(2 ** 32), seq: nextSeq++, epoch: r.int(256), checksum, payload, intact: true }
    const bytes = frameBytes(frame, checksum)
    const k: Known = { frame, pos: 0, size: bytes.length, inner: isInner }
    known.set(frame.seq, k)
    return { bytes, k, inner, innerAt: bytes.length - payload.length + at }
  }
  let pos = 0
  for (let n = r.range(1, 30); n > 0; n--) {
    const { bytes, k, inner, innerAt } = make(false)
    k.pos = pos
    if (inner) inner.k.pos = pos + innerAt
    top.push(k)
    parts.push(bytes)
    pos += bytes.length
  }
  return { bytes: Buffer.concat(parts), known, top }
}

type Damage = { kind: 'none' } | { kind: 'flips'; at: number[] } | { kind: 'truncate'; at: number } | { kind: 'runs'; desc: string }

function damage(r: Rng, bytes: Buffer, top: Known[]): { bytes: Buffer; damage: Damage } {
  switch (r.int(7)) {
    case 0:
      return { bytes, damage: { kind: 'none' } }
    case 1:
    case 2: {
      const out = Buffer.from(bytes)
      const at: number[] = []
      for (let n = r.range(1, 8); n > 0; n--) {
        // Half the time aim at a header.
        const p = r.chance(0.5) ? r.pick(top).pos + r.int(HEADER_SIZE) : r.int(out.length)
        out[p] ^= 1 << r.int(8)
        at.push(p)
      }
      return { bytes: out, damage: { kind: 'flips', at } }
    }
    case 3: {
      const at = r.int(bytes.length)
      return { bytes: bytes.subarray(0, at), damage: { kind: 'truncate', at } }
    }
    default: {
      const pieces: string[] = []
      let out = bytes
      for (let n = r.range(1, 4); n > 0; n--) {
        const at = r.int(out.length + 1)
        const len = r.range(1, 200)
        switch (r.int(3)) {
          case 0:
            out = Buffer.concat([out.subarray(0, at), out.subarray(at + len)])
            pieces.push(`drop ${len} at ${at}`)
            break
          case 1:
            out = Buffer.concat([out.subarray(0, at + len), out.subarray(at, at + len), out.subarray(at + len)])
            pieces.push(`duplicate ${len} at ${at}`)
            break
          default: {
            const junk = r.chance(0.5) ? Buffer.concat([Buffer.from([0xc5, 0x50, 0x01]), r.bytes(len)]) : r.bytes(len)
            out = Buffer.concat([out.subarray(0, at), junk, out.subarray(at)])
            pieces.push(`insert ${junk.length} at ${at}`)
          }
        }
      }
      return { bytes: out, damage: { kind: 'runs', desc: pieces.join(', ') } }
    }
  }
}

function chunked(r: Rng, bytes: Buffer): Buffer[] {
  const style = r.int(4)
  if (style === 0 || bytes.length === 0) return [bytes]
  // Tiny chunks only for short streams: the decoders' cost grows with the square of the chunks in one frame (see the report).
  const max = style === 1 && bytes.length <= 20_000 ? 1 : style <= 2 && bytes.length <= 200_000 ? 30 : 5000
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const n = r.range(1, max)
    chunks.push(bytes.subarray(at, at + n))
    at += n
  }
  return chunks
}

function sameFrame(got: ReceivedFrame, want: ReceivedFrame): boolean {
  return got.type === want.type && got.id === want.id && got.seq === want.seq && got.epoch === want.epoch && got.checksum === want.checksum && got.payload.equals(want.payload)
}

/** Every frame handed on as intact must be one that was encoded (a frame without a checksum: same header and size). */
function checkIntact(frames: ReceivedFrame[], known: Map<number, Known>, what: string): void {
  for (const f of frames) {
    if (!f.intact) continue
    const k = known.get(f.seq)
    assert.ok(k, `${what}: an intact frame (seq ${f.seq}, ${f.payload.length} bytes) that was never encoded`)
    if (f.checksum === 0) {
      assert.ok(f.type === k.frame.type && f.id === k.frame.id && f.checksum === 0 && f.payload.length === k.frame.payload.length, `${what}: frame ${f.seq} without checksum has the header it was encoded with`)
    } else {
      assert.ok(sameFrame(f, k.frame), `${what}: intact frame ${f.seq} is exactly the frame encoded (type ${f.type}/${k.frame.type}, id ${f.id}/${k.frame.id}, epoch ${f.epoch}/${k.frame.epoch}, ${f.payload.length}/${k.frame.payload.length} bytes)`)
    }
  }
}

function runDecoder(chunks: Buffer[], resync: boolean): { frames: ReceivedFrame[]; invalid: string[] } {
  const frames: ReceivedFrame[] = []
  const invalid: string[] = []
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (reason) => invalid.push(reason) }, { resync })
  for (const c of chunks) decoder.write(c)
  return { frames, invalid }
}

async function runDeframer(chunks: Buffer[]): Promise<{ frames: ReceivedFrame[]; lost: number; error: Error | null }> {
  const deframer = createDeframer({ resync: true })
  const frames: ReceivedFrame[] = []
  let lost = 0
  let error: Error | null = null
  deframer.on('data', (item: Deframed) => {
    if ('lost' in item) lost++
    else frames.push(item)
  })
  const ended = new Promise<void>((resolve) => {
    deframer.on('end', resolve)
    deframer.on('error', (err) => {
      error = err
      resolve()
    })
  })
  for (const c of chunks) deframer.write(c)
  deframer.end()
  await within(ended, 5000, 'the deframer ending')
  return { frames, lost, error }
}

const PARSER_ROUNDS = 2000

describe('frame parser fuzz', () => {
  test(`FrameDecoder (strict and resync) and the resync deframer never throw and never hand on a forged frame, over ${PARSER_ROUNDS} damaged streams and random buffers (seed ${SEED})`, async (t) => {
    const uncaught = watchProcess(t)
    const r = new Rng(SEED ^ 0xdec0de)
    const tally = new Map<string, number>()
    let intactFrames = 0
    for (let round = 0; round < PARSER_ROUNDS; round++) {
      if (r.chance(0.15)) {
        // Random buffers: nothing in them is a frame.
        const b = r.chance(0.3) ? Buffer.concat([Buffer.from([0xc5, 0x50]), r.bytes(r.int(5000))]) : r.bytes(r.int(5000))
        for (const resync of [false, true]) {
          const { frames, invalid } = runDecoder(chunked(r, b), resync)
          assert.equal(frames.length, 0, `round ${round}: no frame out of random bytes (resync ${resync})`)
          assert.ok(invalid.length <= (resync ? Infinity : 1), `round ${round}: the strict decoder reports one loss and stops`)
        }
        const d = await runDeframer(chunked(r, b))
        assert.equal(d.error, null, `round ${round}: the resync deframer does not fail on random bytes`)
        assert.equal(d.frames.length, 0, `round ${round}: the deframer finds no frame in random bytes`)
        countBy(tally, 'random')
        continue
      }
      const { bytes, known, top } = frameStream(r)
      const { bytes: damaged, damage: dmg } = damage(r, bytes, top)
      countBy(tally, dmg.kind)
      const what = (mode: string) => `round ${round} (${mode}, ${top.length} frames, ${dmg.kind === 'flips' ? `flips at ${dmg.at.join(',')}` : dmg.kind === 'truncate' ? `cut at ${dmg.at}` : dmg.kind === 'runs' ? dmg.desc : 'undamaged'})`

      const strict = runDecoder(chunked(r, damaged), false)
      const hunting = runDecoder(chunked(r, damaged), true)
      const deframed = await runDeframer(chunked(r, damaged))
      assert.equal(deframed.error, null, `${what('deframer')}: the resync deframer never fails`)
      checkIntact(strict.frames, known, what('strict'))
      checkIntact(hunting.frames, known, what('resync'))
      checkIntact(deframed.frames, known, what('deframer'))
      assert.ok(strict.invalid.length <= 1, `${what('strict')}: reports a lost boundary once, then stops`)
      intactFrames += hunting.frames.filter((f) => f.intact).length

      const topSeqs = top.map((k) => k.frame.seq)
      if (dmg.kind === 'none' || dmg.kind === 'truncate') {
        // Undamaged bytes: exactly the frames that are complete, in order, all intact, nothing lost.
        const complete = top.filter((k) => dmg.kind === 'none' || k.pos + k.size <= dmg.at).map((k) => k.frame.seq)
        for (const [mode, got] of [['strict', strict.frames], ['resync', hunting.frames], ['deframer', deframed.frames]] as const) {
          assert.deepEqual(got.map((f) => f.seq), complete, `${what(mode)}: the complete frames, in order`)
          assert.ok(got.every((f) => f.intact), `${what(mode)}: all intact`)
        }
        assert.deepEqual([strict.invalid.length, hunting.invalid.length, deframed.lost], [0, 0, 0], `${what('all')}: no lost boundary in undamaged bytes`)
      } else if (dmg.kind === 'flips') {
        const touched = (k: Known) => dmg.at.some((p) => p >= k.pos && p < k.pos + k.size)
        // Frame boundaries only move when a header fails: the strict decoder sees the encoded headers, in order.
        assert.deepEqual(strict.frames.map((f) => f.seq), topSeqs.slice(0, strict.frames.length), `${what('strict')}: frames in encoded order`)
        // Hunting after a damaged header finds every frame that was left untouched.
        for (const [mode, got] of [['resync', hunting.frames], ['deframer', deframed.frames]] as const) {
          const seen = new Set(got.filter((f) => f.intact).map((f) => f.seq))
          const missed = top.filter((k) => !touched(k) && !seen.has(k.frame.seq)).map((k) => k.frame.seq)
          assert.deepEqual(missed, [], `${what(mode)}: every untouched frame recovered`)
        }
      }
    }
    t.diagnostic(`${PARSER_ROUNDS} rounds: ${show(tally)}; ${intactFrames} intact frames checked against what was encoded`)
    assert.deepEqual(uncaught, [], 'no uncaught exception or unhandled rejection')
    assert.deepEqual(uncaught.leaked, [], 'no file handle left to the garbage collector')
  })
})

// ─── c. a real Client against a fake server ─────────────────────────────────

const FAKE_FILES = new Map<string, Buffer>()
{
  const r = new Rng(7)
  for (const [name, size] of [['zero', 0], ['one', 1], ['small', 700], ['mid', 5000], ['big', 40_000]] as const) FAKE_FILES.set(name, r.bytes(size))
}

interface FakeRequest {
  id: number
  op: string
  args: Record<string, unknown>
}

/** JSON payloads, or not even JSON, that a confused server might send where JSON is due. */
function junkJson(r: Rng): Buffer {
  return Buffer.from(
    r.pick([
      '{}', '{"length":-1}', '{"length":"many"}', '{"size":1e999}', '{"entries":5}', '{"entries":[1,{"name":5}]}', '{"resync":"x"}', `{"a":${nested(200, '1')}}`, nested(20_000, ''),
      '{"code":"EWHAT","message":"made up"}', '{"code":5,"message":{}}', '{"message":"no code"}', '{"length":1e30}', 'not json', 'null', '[]', '"x"', '5', '',
    ]),
  )
}

/**
 * The honest frames of a response: `from` is the seq to start at and `offset`
 * the DATA bytes already delivered (a resend); epoch tags every frame.
 */
function honestFrames(req: FakeRequest, page: number, from = 0, offset = 0, epoch = 0): Frame[] {
  const frames: Frame[] = []
  const add = (type: FrameType, payload: Buffer) => frames.push({ type, id: req.id, seq: from + frames.length, epoch, payload })
  const json = (type: FrameType, body: unknown) => add(type, Buffer.from(JSON.stringify(body)))
  if (req.op === 'read') {
    const file = FAKE_FILES.get(String(req.args.path))
    if (!file) {
      json(FrameType.ERROR, { code: 'ENOENT', message: 'no such file' })
      return frames
    }
    const start = Number(req.args.offset ?? 0)
    const end = req.args.length === undefined ? file.length : Math.min(file.length, start + Number(req.args.length))
    if (from === 0) json(FrameType.START, { size: file.length, offset: start, length: end - start, mtimeMs: 0 })
    for (let at = start + offset; at < end; at += page) add(FrameType.DATA, file.subarray(at, Math.min(end, at + page)))
    json(FrameType.END, { length: end - start })
  } else if (req.op === 'stat') {
    json(FrameType.RESULT, { path: req.args.path, type: 'file', size: 1, mtimeMs: 0, mtime: new Date(0).toISOString(), cachedBytes: 0, cached: false })
  } else if (req.op === 'ls') {
    json(FrameType.RESULT, { entries: [...FAKE_FILES.keys()].map((name) => ({ name, type: 'file' })) })
  } else if (req.op === 'stats') {
    json(FrameType.RESULT, { hits: 0, misses: 0 })
  } else {
    json(FrameType.ERROR, { code: 'EBADREQ', message: `unknown command ${req.op}` })
  }
  return frames
}

/**
 * Damage a response in ways a receiver can detect: bad bytes, lost, repeated
 * or reordered frames, wrong types, garbage, silence. Never a consistent lie
 * (other bytes under a valid checksum, a frame moved to another request in
 * flight, renumbered into a gap, or tagged with the epoch being waited for):
 * no receiver could tell those from the truth.
 */
function damageResponse(r: Rng, frames: Frame[], checksum: number): { out: Buffer[]; stop: 'silence' | 'close' | null; desc: string[] } {
  const out = frames.map((f) => frameBytes(f, checksum))
  const desc: string[] = []
  let stop: 'silence' | 'close' | null = null
  for (let n = r.range(1, 3); n > 0 && out.length > 0; n--) {
    const k = r.int(out.length)
    const f = frames[Math.min(k, frames.length - 1)]
    switch (r.int(12)) {
      case 0: {
        const b = Buffer.from(out[k])
        b[r.int(b.length)] ^= 1 << r.int(8)
        out[k] = b
        desc.push(`flip in frame ${k}`)
        break
      }
      case 1:
        out.splice(k, 1)
        desc.push(`drop ${k}`)
        break
      case 2:
        out.splice(r.int(out.length + 1), 0, out[k])
        desc.push(`repeat ${k}`)
        break
      case 3: {
        const j = r.int(out.length)
        ;[out[k], out[j]] = [out[j], out[k]]
        desc.push(`swap ${k} ${j}`)
        break
      }
      case 4:
        out[k] = out[k].subarray(0, r.int(out[k].length))
        desc.push(`truncate ${k}`)
        break
      case 5:
        out.splice(k, 0, r.chance(0.5) ? Buffer.concat([Buffer.from([0xc5, 0x50]), r.bytes(r.range(0, 60))]) : r.bytes(r.range(1, 300)))
        desc.push(`garbage before ${k}`)
        break
      case 6:
        out[k] = frameBytes({ ...f, type: r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200]) }, checksum)
        desc.push(`retype ${k}`)
        break
      case 7:
        out[k] = frameBytes({ ...f, seq: f.seq + frames.length + r.int(1000) }, checksum)
        desc.push(`renumber ${k} past the end`)
        break
      case 8:
        out[k] = frameBytes({ ...f, epoch: r.range(200, 255) }, checksum)
        desc.push(`epoch of ${k}`)
        break
      case 9:
        if (f.type !== FrameType.DATA) {
          out[k] = frameBytes({ ...f, payload: junkJson(r) }, checksum)
          desc.push(`junk JSON in ${k}`)
        }
        break
      case 10:
        out.splice(k, 0, frameBytes({ type: FrameType.ERROR, id: f.id, seq: f.seq, epoch: f.epoch, payload: Buffer.from(JSON.stringify({ code: r.pick(['ENOENT', 'EIO', 'EWHAT', 'ECHANGED']), message: 'fuzz' })) }, checksum))
        desc.push(`error at ${k}`)
        break
      default:
        out.splice(k)
        stop = r.chance(0.15) ? 'close' : 'silence'
        desc.push(`${stop} from ${k}`)
    }
  }
  return { out, stop, desc }
}

interface FakeServer {
  url: string
  close(): Promise<void>
  stats: Map<string, number>
}

async function fakeServer(t: Pick<TestContext, 'after'>, seed: number): Promise<FakeServer> {
  const sockets = new Set<net.Socket>()
  const stats = new Map<string, number>()
  const rng = new Rng(seed)
  const server = net.createServer((socket) => {
    const r = rng.fork()
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const checksum = r.pick([1, 1, 2])
    const page = r.pick([100, 1000, 4096, 16_384])
    const requests = new Map<number, FakeRequest>()
    let dead = false
    // Frames go out in order, with small random pauses, so responses interleave frame by frame.
    let queue = Promise.resolve()
    const send = (bufs: Buffer[], stop: 'silence' | 'close' | null = null) => {
      queue = queue.then(async () => {
        for (const b of bufs) {
          if (dead) return
          if (r.chance(0.3)) await sleep(r.int(3))
          if (b.length > 1 && r.chance(0.1)) {
            // split across writes
            const at = r.range(1, b.length - 1)
            socket.write(b.subarray(0, at))
            await sleep(1)
            socket.write(b.subarray(at))
          } else socket.write(b)
        }
        if (stop === 'close') {
          dead = true
          socket.destroy()
        }
      })
    }
    const hello = { protocol: 1, server: 'fake/0', checksum: checksum === 2 ? 'md5' : 'crc32', pageSize: page }
    const helloRoll = r.int(100)
    if (helloRoll < 88) send([frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum)])
    else {
      countBy(stats, 'bad hello')
      const bad = [
        () => [r.bytes(r.range(1, 200))],
        () => [frameBytes(jsonFrame(FrameType.HELLO, 0, 0, { ...hello, protocol: 2 }), checksum)],
        () => [frameBytes(jsonFrame(FrameType.START, 0, 0, hello), checksum)],
        () => [frameBytes(jsonFrame(FrameType.HELLO, 5, 0, hello), checksum)],
        () => {
          const b = frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum)
          b[b.length - 1] ^= 1
          return [b]
        },
        () => [frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum).subarray(0, r.int(40))],
        () => [frameBytes({ type: FrameType.HELLO, id: 0, seq: 0, payload: Buffer.from(r.pick(KNOWN_BUGS ? ['nope', 'null', '[]', '{}', '{"protocol":"1"}'] : ['nope', '[]', '{}', '{"protocol":"1"}'])) }, checksum)],
        () => [],
      ]
      send(r.pick(bad)(), r.chance(0.5) ? 'close' : null)
    }
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      let nl: number
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const msg = JSON.parse(line) as { id: number; op: string } & Record<string, unknown>
        const { id, op, ...args } = msg
        if (op === 'cancel') continue
        if (op === 'nack') {
          const req = requests.get(id)
          if (!req) continue
          const epoch = Number(args.resync) & 0xff
          const resend = honestFrames(req, Math.max(1, Math.floor(page / 2)), Number(args.seq), Number(args.offset), epoch)
          const roll = r.int(100)
          if (roll < 55) {
            countBy(stats, 'honest resend')
            send([frameBytes(jsonFrame(FrameType.RESYNC, id, Number(args.seq), { resync: args.resync, seq: args.seq, offset: args.offset, pageSize: page }, epoch), checksum), ...resend.map((f) => frameBytes(f, checksum))])
          } else if (roll < 70) {
            countBy(stats, 'resend without RESYNC')
            send(resend.map((f) => frameBytes(f, checksum)))
          } else if (roll < 85) {
            countBy(stats, 'damaged resend')
            const d = damageResponse(r, resend, checksum)
            send(d.out, d.stop === 'close' ? 'close' : null)
          } else countBy(stats, 'ignored NACK')
          continue
        }
        const req: FakeRequest = { id, op, args }
        requests.set(id, req)
        const roll = r.int(100)
        if (roll < 45) {
          countBy(stats, 'honest')
          send(honestFrames(req, page).map((f) => frameBytes(f, checksum)))
        } else if (roll < 95) {
          countBy(stats, 'damaged')
          const d = damageResponse(r, honestFrames(req, page), checksum)
          send(d.out, d.stop === 'close' ? 'close' : null)
        } else if (roll < 98) {
          countBy(stats, 'silent')
        } else {
          countBy(stats, 'connection error frame')
          send([frameBytes(jsonFrame(FrameType.ERROR, 0, 0, { code: 'EBADREQ', message: 'fuzz' }), checksum)])
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  t.after(close)
  return { url: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close, stats }
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }

function settle<T>(p: Promise<T>): Promise<Outcome> {
  return p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  )
}

/** A rejection as the brief of the API promises it: a CacheservError with a non-empty string code. */
function checkRejection(error: unknown, what: string, codes: Map<string, number>): void {
  assert.ok(error instanceof CacheservError, `${what}: rejects with a CacheservError, got ${(error as Error)?.stack ?? String(error)}`)
  assert.ok(typeof error.code === 'string' && error.code.length > 0, `${what}: error code is a non-empty string, got ${String(error.code)}`)
  countBy(codes, error.code)
}

const CLIENT_ROUNDS = 160
const CLIENT_PARALLEL = 8

describe('client fuzz against a fake server', () => {
  test(`every request of a real Client ends, and every read that resolves is byte-exact, over ${CLIENT_ROUNDS} connections to a lying server (seed ${SEED})`, async (t) => {
    const uncaught = watchProcess(t)
    const r = new Rng(SEED ^ 0xc11e47)
    const fake = await fakeServer(t, SEED ^ 0xfa4e)
    const codes = new Map<string, number>()
    const outcomes = new Map<string, number>()
    let verifiedBytes = 0
    const started = Date.now()

    const round = async (rr: Rng, n: number) => {
      const what = `connection ${n}`
      const c = await settle(connect(fake.url, { progressTimeout: 100, timeout: 1000 }))
      if (!c.ok) {
        checkRejection(c.error, `${what}: connect`, codes)
        countBy(outcomes, 'connect rejected')
        return
      }
      const client = c.value as Client
      const ops = Array.from({ length: rr.range(1, 6) }, (_, i): Promise<void> => {
        const label = `${what} op ${i}`
        const kind = rr.int(10)
        if (kind < 6) {
          const path = rr.chance(0.9) ? rr.pick([...FAKE_FILES.keys()]) : 'missing'
          const file = FAKE_FILES.get(path)
          const opts = rr.chance(0.4) ? { offset: rr.int((file?.length ?? 10) + 1), length: rr.int(20_000) } : {}
          return settle(client.readFile(path, opts)).then((o) => {
            if (o.ok) {
              assert.ok(file, `${label}: a read of a missing file does not succeed`)
              const start = opts.offset ?? 0
              const want = file.subarray(start, opts.length === undefined ? file.length : start + opts.length)
              assert.ok((o.value as Buffer).equals(want), `${label}: read ${path} ${JSON.stringify(opts)} resolved with the intended ${want.length} bytes (got ${(o.value as Buffer).length})`)
              verifiedBytes += want.length
              countBy(outcomes, 'read resolved')
            } else {
              checkRejection(o.error, `${label}: read ${path}`, codes)
              countBy(outcomes, 'read rejected')
            }
          })
        }
        if (kind < 7) {
          // Abandon a read part-way.
          const stream = client.read(rr.pick(['big', 'mid']))
          return new Promise<void>((resolve) => {
            stream.once('data', () => stream.destroy())
            stream.once('error', (err) => {
              checkRejection(err, `${label}: abandoned read`, codes)
              resolve()
            })
            stream.once('close', () => resolve())
          }).then(() => countBy(outcomes, 'read abandoned'))
        }
        const p = kind < 8 ? client.stat(rr.pick([...FAKE_FILES.keys()])) : kind < 9 ? client.ls('') : client.stats()
        return settle(p as Promise<unknown>).then((o) => {
          if (o.ok) countBy(outcomes, 'result resolved')
          else {
            checkRejection(o.error, `${label}: result request`, codes)
            countBy(outcomes, 'result rejected')
          }
        })
      })
      await within(Promise.all(ops), 10_000, `${what}: its ${ops.length} requests`)
      await within(client.close(), 5000, `${what}: close`)
    }

    for (let n = 0; n < CLIENT_ROUNDS; n += CLIENT_PARALLEL) {
      await Promise.all(Array.from({ length: Math.min(CLIENT_PARALLEL, CLIENT_ROUNDS - n) }, (_, i) => round(r.fork(), n + i)))
    }
    t.diagnostic(`${CLIENT_ROUNDS} connections in ${Date.now() - started} ms; outcomes: ${show(outcomes)}; ${verifiedBytes} bytes verified`)
    t.diagnostic(`server behaviour: ${show(fake.stats)}; rejection codes: ${show(codes)}`)
    assert.ok((outcomes.get('read resolved') ?? 0) > 0, 'some reads got through the damage (the check of their bytes ran)')
    assert.deepEqual(uncaught, [], 'no uncaught exception or unhandled rejection')
    assert.deepEqual(uncaught.leaked, [], 'no file handle left to the garbage collector')
  })
})

// ─── bugs the fuzz found ────────────────────────────────────────────────────

/** A fake server that answers the first request with the given frames (after a valid HELLO). */
async function oneAnswerServer(t: Pick<TestContext, 'after'>, answer: (id: number) => Frame[]): Promise<string> {
  return loopbackServer(t, (socket) => {
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, { protocol: 1, server: 'fake/0', checksum: 'crc32', pageSize: 1024 }), 1))
    let answered = false
    socket.on('data', (chunk: Buffer) => {
      if (answered) return
      answered = true
      const { id } = JSON.parse(chunk.toString().split('\n')[0]) as { id: number }
      for (const f of answer(id)) socket.write(frameBytes(f, 1))
    })
  })
}

describe('inputs the fuzz found bugs with', () => {
  // Found by this fuzz: JSON.stringify(id) in the EBADREQ message overflowed the stack inside the socket's data event.
  test('the server survives a request whose id is a deeply nested array', async (t) => {
    const root = tempDir(t)
    const proc = await startServerProcess(t, ['--root', root, '--port', '0'])
    const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(proc.url)!
    const socket = net.connect({ host: m[1], port: Number(m[2]) })
    socket.on('error', () => {})
    t.after(() => void socket.destroy())
    const exited = new Promise<string>((resolve) => proc.child.once('exit', (code, signal) => resolve(`exited (${code ?? signal})`)))
    socket.write(`{"id":${nested(5000, '')},"op":"stat","path":""}\n{"id":7,"op":"stat","path":""}\n`)
    const answered = new Promise<string>((resolve) => {
      const decoder = new FrameDecoder({ onFrame: (f) => f.id === 7 && resolve('answered'), onInvalid: () => {} })
      socket.on('data', (c: Buffer) => decoder.write(c))
    })
    const outcome = await within(Promise.race([answered, exited]), 10_000, 'the server answering or exiting')
    assert.equal(outcome, 'answered', `the next request is answered; the server ${outcome}; stderr: ${proc.stderr().slice(0, 500)}`)
  })

  // Found by this fuzz: START and END were parsed outside any try, so the error escaped into the socket's data event.
  test('a read whose START payload is not JSON fails with EPROTO instead of throwing out of the socket handler', async (t) => {
    const uncaught = watchProcess(t)
    const url = await oneAnswerServer(t, (id) => [{ type: FrameType.START, id, seq: 0, payload: Buffer.from('not json') }])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.readFile('x')), 5000, 'the read')
    assert.deepEqual(uncaught, [], 'nothing thrown outside the read')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `the read fails with EPROTO, got ${String(!outcome.ok && (outcome.error as Error).message)}`)
  })

  test('a read whose END payload is JSON null fails with EPROTO instead of throwing out of the socket handler', async (t) => {
    const uncaught = watchProcess(t)
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.START, id, 0, { size: 0, offset: 0, length: 0, mtimeMs: 0 }), jsonFrame(FrameType.END, id, 1, null)])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.readFile('x')), 5000, 'the read')
    assert.deepEqual(uncaught, [], 'nothing thrown outside the read')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `the read fails with EPROTO, got ${String(!outcome.ok && (outcome.error as Error).message)}`)
  })

  test('ls rejects with a CacheservError when the RESULT payload is JSON null', async (t) => {
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.RESULT, id, 0, null)])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.ls('')), 5000, 'ls')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError, `ls rejects with a CacheservError, got ${outcome.ok ? 'a result' : String(outcome.error)}`)
  })

  test('an ERROR frame whose payload is not a {code, message} object rejects with a string code', async (t) => {
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.ERROR, id, 0, 'x')])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.stat('x')), 5000, 'stat')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError, 'stat rejects with a CacheservError')
    assert.equal(typeof outcome.error.code, 'string', `its code is a string, got ${String(outcome.error.code)}`)
  })

  test('write takes a file name of 255 bytes, the longest the jail allows', async (t) => {
    const { url } = await startServer(t, { writable: true })
    const client = await connectTo(t, url)
    const name = 'x'.repeat(255)
    const outcome = await within(settle(client.write(name, Buffer.from('hi'))), 5000, 'the write')
    assert.ok(outcome.ok, `the write succeeds, got ${outcome.ok ? '' : String((outcome.error as Error).message)}`)
    assert.deepEqual(outcome.value, { path: name, size: 2 })
  })

  test('32 concurrent writes on one connection all succeed', async (t) => {
    const { url } = await startServer(t, { writable: true })
    const client = await connect(url, { progressTimeout: 200 })
    t.after(() => client.close())
    const outcomes = await within(Promise.all(Array.from({ length: 32 }, (_, i) => settle(client.write(`w${i}.bin`, Buffer.alloc(1000, i))))), 20_000, 'the writes')
    const failed = outcomes.filter((o) => !o.ok).map((o) => String(!o.ok && (o.error as CacheservError).code))
    assert.deepEqual(failed, [], 'every write succeeds')
  })

  test('a client that hangs up with 32 writes waiting for their frames is cleaned up', async (t) => {
    const { server, url, root } = await startServer(t, { writable: true })
    const socket = net.connect({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(url)![1]) })
    socket.on('error', () => {})
    socket.on('data', () => {})
    t.after(() => void socket.destroy())
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write(Array.from({ length: 32 }, (_, i) => JSON.stringify({ id: i + 1, op: 'write', path: `w${i}.bin` }) + '\n').join(''))
    assert.ok(await eventually(() => readdirSync(root).some((n) => n.endsWith('.cacheserv-tmp')), 5000), 'the writes started')
    socket.destroy()
    assert.ok(await eventually(() => server.stats().connections === 0, 5000), `the connection is closed (${server.stats().connections} open)`)
    assert.ok(await eventually(() => !readdirSync(root).some((n) => n.endsWith('.cacheserv-tmp')), 5000), 'the temporary files are removed')
  })

  test('an upload whose END frame carries a deeply nested length fails with EBADREQ', async (t) => {
    const { url } = await startServer(t, { writable: true })
    const socket = net.connect({ host: '127.0.0.1', port: Number(/:(\d+)$/.exec(url)![1]) })
    socket.on('error', () => {})
    t.after(() => void socket.destroy())
    const answer = new Promise<ReceivedFrame>((resolve) => {
      const decoder = new FrameDecoder({ onFrame: (f) => f.id === 1 && resolve(f), onInvalid: () => {} })
      socket.on('data', (c: Buffer) => decoder.write(c))
    })
    socket.write(JSON.stringify({ id: 1, op: 'write', path: 'x.bin' }) + '\n')
    socket.write(frameBytes({ type: FrameType.DATA, id: 1, seq: 1, payload: Buffer.from('a') }, 1))
    socket.write(frameBytes({ type: FrameType.END, id: 1, seq: 2, payload: Buffer.from(`{"length":${nested(20_000, '1')}}`) }, 1))
    const frame = await within(answer, 5000, 'the answer to the write')
    assert.equal(frame.type, FrameType.ERROR)
    assert.equal((JSON.parse(frame.payload.toString()) as { code: string }).code, 'EBADREQ')
  })

  test('connect rejects with EPROTO when the HELLO payload is JSON null', async (t) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      socket.write(frameBytes({ type: FrameType.HELLO, id: 0, seq: 0, payload: Buffer.from('null') }, 1))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const outcome = await within(settle(connect(`tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { timeout: 2000 })), 5000, 'connect')
    if (outcome.ok) await (outcome.value as Client).close()
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `connect rejects with EPROTO, got ${outcome.ok ? 'a client' : String(outcome.error)}`)
  })

  test('closing a connection while a read is in flight closes the file the read had open', async (t) => {
    const watch = watchProcess(t)
    const { server, url, root } = await startServer(t, { cacheSize: 4 * 1024 * 1024 })
    writeFile(root, 'big.bin', 8 * 1024 * 1024)
    const warm = await connect(url)
    await warm.readFile('big.bin', { length: 1 })
    await warm.close()
    assert.ok(await eventually(() => server.stats().connections === 0, 5000), 'the warm-up connection closed')
    const fdsBefore = fdCount()
    for (let i = 0; i < 20; i++) {
      const client = await connect(url)
      const read = client.readFile('big.bin').catch(() => null)
      await sleep(i % 10)
      await client.close()
      await read
    }
    assert.ok(await eventually(() => server.stats().connections === 0, 5000), 'every connection closed')
    // Either symptom: descriptors still open, or closed by a garbage collection that happened to run meanwhile.
    const back = await eventually(() => fdCount() <= fdsBefore, 3000)
    assert.deepEqual(watch.leaked, [], 'no file handle left to the garbage collector')
    assert.ok(back, `file descriptors back to ${fdsBefore}, now ${fdCount()}`)
  })

  test('a symlink loop in the root is refused with a client error, not EINTERNAL', async (t) => {
    const { url, root } = await startServer(t)
    symlinkSync('loop', join(root, 'loop'))
    const client = await connectTo(t, url)
    // Settled at once: all three are under way together, and a refusal may come before the one awaited.
    const outcomes = [['read', settle(client.readFile('loop'))], ['stat', settle(client.stat('loop'))], ['ls', settle(client.ls('loop'))]] as const
    for (const [what, p] of outcomes) {
      const outcome = await within(p, 5000, what)
      assert.ok(!outcome.ok && outcome.error instanceof CacheservError, `${what} of a symlink loop fails`)
      assert.notEqual(outcome.error.code, 'EINTERNAL', `${what} of a symlink loop: ${outcome.error.message}`)
    }
  })
})
