/**
 * Seeded, bounded protocol fuzz of a live server: thousands of random and
 * mutated request lines and upload frames over raw sockets, while a
 * well-behaved client keeps reading byte-exactly. Then the inputs that once
 * triggered server bugs. The seed is random per run and shown in the test
 * title; replay a run with FUZZ_SEED=<seed> (spec/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, readdirSync, symlinkSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { CacheservError } from '../../lib/errors.js'
import { FrameType, HEADER_SIZE, MAX_PAYLOAD } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import { type Frame, jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'
import { fdCount } from '../helpers/fds.js'
import { SEED, KNOWN_BUGS, Rng, watchProcess, within, eventually, frameBytes, headerOnly, countBy, show, nested, settle } from '../helpers/fuzz.js'

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

describe('inputs the server fuzz found bugs with', () => {
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
