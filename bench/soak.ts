/**
 * Soak test: a real server process under many concurrent clients for a
 * bounded time, every byte checked.
 *
 *   node dist-bench/bench/soak.js [--seconds 60] [--clients 32] [--cache-size 32MiB] [--seed N]
 *                           [--request-timeout 2]
 *
 * It writes a dataset to a temp dir (a few files of several MiB, hundreds of
 * ~100 KB), starts dist/bin/cacheserv-pipe.js directly (so its shebang and
 * node flags apply) with a cache smaller than the data and a short
 * --request-timeout, and runs the clients in this process. Each loops over:
 * whole-file reads, random ranges, ls, stat, readMany, reads abandoned
 * part-way (stream destroyed), connections dropped with reads in flight (then
 * reconnects), and reads of a missing file. Every byte received is checked
 * against the file written (sha256 of the range).
 *
 * Mixed into the same loops, each bounded in how many run at once and in
 * time, over raw sockets:
 *  - non-readers: request several big files and never read a byte, held for
 *    1–5 s, then dropped;
 *  - NACK storms: many reads, `cancel`ed at once, then a `nack` for each
 *    (ERROR ECORRUPT for a cancelled one, RESYNC and the read again for one
 *    that had finished), and several NACKs in a row for finished reads,
 *    resumed from a random frame; every resent byte is checked;
 *  - slow request lines: a line trickled one byte at a time, far slower than
 *    --request-timeout, or no request at all: the server must answer ERROR
 *    ETIMEDOUT on id 0 (or at least close).
 * And, besides the loops:
 *  - an in-place writer (a child process) overwrites the files under live/
 *    with new versions (one pwrite of the whole file at offset 0, same size;
 *    every version is one repeated byte value) while the clients read them: a
 *    read must return exactly one version the writer wrote, or ECHANGED; once
 *    the writer has exited, exactly its last version;
 *  - a probe process connects afresh once a second, stats and reads 4 KiB;
 *    any probe slower than 1 s, or failing, fails the soak;
 *  - the server's RSS and cached bytes are sampled every second, during the
 *    load and again 5 s after it, against the README's bound
 *    (RSS ≤ 1.05 × cached bytes + 96 MiB); a sample over it fails the soak.
 *
 * Exit status: 0 when no byte was wrong, no error was unexpected, nothing
 * hung, every probe answered within 1 s, the server lived and its RSS kept
 * the bound; 1 otherwise; 2 on a usage error.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { type Client, connect } from '../lib/client/client.js'
import { parseAddress } from '../lib/address.js'
import { CacheservError } from '../lib/errors.js'
import { FrameType } from '../lib/protocol/constants.js'
import { FrameDecoder } from '../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../lib/protocol/frame.js'

const SERVER_BIN = fileURLToPath(new URL('../../dist/bin/cacheserv-pipe.js', import.meta.url))
const PROBE = fileURLToPath(new URL('./soak-probe.js', import.meta.url))
const MiB = 1024 * 1024

// ─── options ────────────────────────────────────────────────────────────────

interface Options {
  seconds: number
  clients: number
  cacheSize: string
  seed: number
  /** Passed to the server as --request-timeout (seconds); the slow request lines are timed against it. */
  requestTimeout: number
  /** Fail the soak when the server's RSS breaks the README's bound (otherwise only reported). */
}

function usage(message: string): never {
  console.error(`soak: ${message}\nusage: node dist-bench/bench/soak.js [--seconds N] [--clients N] [--cache-size SIZE] [--seed N] [--request-timeout S]`)
  process.exit(2)
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { seconds: 60, clients: 32, cacheSize: '32MiB', seed: randomBytes(4).readUInt32BE(0), requestTimeout: 2 }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = () => {
      const v = argv[++i]
      if (v === undefined) usage(`${arg} needs a value`)
      return v
    }
    const count = (min: number) => {
      const n = Number(value())
      if (!Number.isInteger(n) || n < min) usage(`${arg} must be an integer ≥ ${min}`)
      return n
    }
    if (arg === '--seconds') opts.seconds = count(1)
    else if (arg === '--clients') opts.clients = count(1)
    else if (arg === '--cache-size') opts.cacheSize = value()
    else if (arg === '--seed') opts.seed = count(0) >>> 0
    else if (arg === '--request-timeout') opts.requestTimeout = count(1)
    else if (arg === '--help' || arg === '-h') usage('help')
    else usage(`unknown argument ${arg}`)
  }
  return opts
}

/** mulberry32: the soak's choices are reproducible from --seed (their interleaving is not). */
function rng(seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
    chance: (p: number) => next() < p,
    seed: () => Math.floor(next() * 2 ** 32),
  }
}
type Rng = ReturnType<typeof rng>

// ─── the dataset ────────────────────────────────────────────────────────────

interface DataFile {
  path: string
  data: Buffer
  sha: string
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

function makeDataset(root: string): { files: DataFile[]; big: DataFile[]; small: DataFile[]; dirs: Map<string, string[]> } {
  const files: DataFile[] = []
  const add = (path: string, size: number) => {
    const data = randomBytes(size)
    const full = join(root, path)
    mkdirSync(join(full, '..'), { recursive: true })
    writeFileSync(full, data)
    files.push({ path, data, sha: sha256(data) })
  }
  // A few of several MiB, sizes off the block and page boundaries.
  for (const [i, mib] of [3, 5, 8, 6].entries()) add(`big/shard-${i}.bin`, mib * MiB + 12_345 * (i + 1))
  // Hundreds of ~100 KB, in a few directories.
  for (let i = 0; i < 400; i++) add(`small/${String(i % 8).padStart(2, '0')}/img-${String(i).padStart(4, '0')}.jpg`, 80_000 + ((i * 7919) % 40_000))
  // What the server serves is what is on disk: check the copies we keep against it once.
  for (const f of files) if (!readFileSync(join(root, f.path)).equals(f.data)) throw new Error(`${f.path} on disk differs from what was written`)
  const dirs = new Map<string, string[]>()
  for (const f of files) {
    const at = f.path.lastIndexOf('/')
    const dir = f.path.slice(0, at)
    dirs.set(dir, [...(dirs.get(dir) ?? []), f.path.slice(at + 1)])
  }
  for (const names of dirs.values()) names.sort()
  return { files, big: files.filter((f) => f.path.startsWith('big/')), small: files.filter((f) => f.path.startsWith('small/')), dirs }
}

// ─── files rewritten in place while they are read ──────────────────────────

/**
 * The files under live/ hold one version at a time, each version a single
 * repeated byte value: a range is one whole version iff all its bytes are
 * equal to a value the writer wrote. Version i has the value versionValue(i)
 * (distinct for i < 255, never 0); version 0 is the file as first written.
 */
interface LiveFile {
  path: string
  size: number
}

interface Live {
  files: LiveFile[]
  /** Every value a version may have: the initial one and each the writer plans. */
  values: Set<number>
  /** Versions the writer reports written so far, and the last one's value. */
  written: number
  last: number
  /** The writer process has exited and its report has been read to the end. */
  done: boolean
  exit: string
  /** Seconds since the soak's start when the writer started and exited. */
  startedAt: number
  endedAt: number
}

const MAX_VERSIONS = 200
const versionValue = (i: number) => ((37 * i + 0x5a) % 255) + 1

function makeLive(root: string): LiveFile[] {
  const files = [
    { path: 'live/shard.bin', size: 3 * MiB + 4321 },
    { path: 'live/img.jpg', size: 100_003 },
  ]
  mkdirSync(join(root, 'live'), { recursive: true })
  for (const f of files) writeFileSync(join(root, f.path), Buffer.alloc(f.size, versionValue(0)))
  return files
}

/**
 * The writer, run as `node -e WRITER PLAN`: PLAN is JSON {files: [[path, size]],
 * steps: [[delayMs, value]], ms}. After each delay it overwrites every file
 * with the value, the whole file in one pwrite at offset 0, and prints
 * {"n","value"}; it stops after the last step or once `ms` have passed.
 */
const WRITER = `
const fs = require('fs')
const plan = JSON.parse(process.argv[1])
const fds = plan.files.map(([p]) => fs.openSync(p, 'r+'))
const bufs = plan.files.map(([, size]) => Buffer.alloc(size))
const start = Date.now()
;(async () => {
  let n = 0
  for (const [delay, value] of plan.steps) {
    await new Promise((r) => setTimeout(r, delay))
    if (Date.now() - start > plan.ms) break
    for (let i = 0; i < fds.length; i++) {
      bufs[i].fill(value)
      const wrote = fs.writeSync(fds[i], bufs[i], 0, bufs[i].length, 0)
      if (wrote !== bufs[i].length) throw new Error('short write: ' + wrote + ' of ' + bufs[i].length)
    }
    process.stdout.write(JSON.stringify({ n: ++n, value }) + '\\n')
  }
  for (const fd of fds) fs.closeSync(fd)
})()
`

/** Pauses between versions: some back to back (a read sees them change), some long enough for reads to settle. */
function writerPlan(r: Rng, ms: number): [number, number][] {
  const steps: [number, number][] = []
  let t = 0
  while (steps.length < MAX_VERSIONS) {
    const delay = r.pick([1, 3, 20, 100, 400, 1200, 1600, 2500])
    if ((t += delay) > ms) break
    steps.push([delay, versionValue(steps.length + 1)])
  }
  return steps
}

function startWriter(root: string, live: Live, steps: [number, number][], ms: number, t0: number): ChildProcess {
  const plan = { files: live.files.map((f) => [join(root, f.path), f.size]), steps, ms }
  const child = spawn(process.execPath, ['-e', WRITER, JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.startedAt = (Date.now() - t0) / 1000
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const { n, value } = JSON.parse(line) as { n: number; value: number }
    live.written = n
    live.last = value
  })
  child.once('close', (code, signal) => {
    live.done = true
    live.endedAt = (Date.now() - t0) / 1000
    live.exit = code === 0 ? 'exited 0' : `exited ${code ?? signal}: ${err.slice(-500)}`
  })
  return child
}

// ─── the server process ─────────────────────────────────────────────────────

interface ServerProc {
  child: ChildProcess
  url: string
  exit: { code: number | null; signal: NodeJS.Signals | null } | null
  stderr: () => string
}

async function startServer(root: string, cacheSize: string, requestTimeout: number): Promise<ServerProc> {
  try {
    accessSync(SERVER_BIN, constants.X_OK)
  } catch {
    // `tsc` alone does not set the bit that `npm run build` sets; the shebang needs it.
    chmodSync(SERVER_BIN, 0o755)
  }
  const child = spawn(SERVER_BIN, ['--root', root, '--port', '0', '--cache-size', cacheSize, '--request-timeout', String(requestTimeout)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const proc: ServerProc = { child, url: '', exit: null, stderr: () => err }
  child.once('exit', (code, signal) => (proc.exit = { code, signal }))
  proc.url = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`server did not start within 10 s: ${err}`)), 10_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening on (\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited (${code}) before listening: ${err}`))
    })
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
  })
  return proc
}

function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : null
  } catch {
    return null
  }
}

// ─── bookkeeping ────────────────────────────────────────────────────────────

class Tally {
  readonly served = new Map<string, number>()
  readonly expected = new Map<string, number>()
  readonly unexpected = new Map<string, number>()
  readonly samples: string[] = []
  bytesVerified = 0
  wrongBytes = 0
  wrongReads: string[] = []
  hung = 0
  /** Counts of the hostile behaviours and what the server answered them. */
  readonly hostile = new Map<string, number>()
  /** Seconds from a slow line's first byte (or from HELLO, for a silent one) to the server's ETIMEDOUT or close. */
  readonly timeouts: number[] = []

  ok(kind: string): void {
    add(this.served, kind)
  }

  error(err: unknown, what: string, expectedCodes: readonly string[]): void {
    const code = err instanceof CacheservError ? err.code : `${(err as Error)?.name ?? 'non-error'} (not a CacheservError)`
    if (expectedCodes.includes(code)) return add(this.expected, `${code} (${what.split(' ')[0]})`)
    add(this.unexpected, code)
    if (this.samples.length < 10) this.samples.push(`${what}: ${code}: ${(err as Error)?.message ?? String(err)}`)
  }

  /** Something the server did that no client may see. */
  unexpectedly(kind: string, detail: string): void {
    add(this.unexpected, kind)
    if (this.samples.length < 10) this.samples.push(detail)
  }

  /** Count wrong bytes found by a check of its own (the live files). */
  wrong(n: number, detail: string): void {
    this.wrongBytes += n
    if (this.wrongReads.length < 10) this.wrongReads.push(detail)
  }

  /** Check `got` against the bytes the file holds at `offset`; counts wrong bytes (a short read counts its missing bytes). */
  verify(file: DataFile, offset: number, want: number, got: Buffer, hash: string, what: string): void {
    const expected = file.data.subarray(offset, offset + want)
    const expectedSha = offset === 0 && want === file.data.length ? file.sha : sha256(expected)
    if (got.length === expected.length && hash === expectedSha) {
      this.bytesVerified += got.length
      return
    }
    let wrong = Math.abs(got.length - expected.length)
    const n = Math.min(got.length, expected.length)
    for (let i = 0; i < n; i++) if (got[i] !== expected[i]) wrong++
    this.wrongBytes += wrong
    this.bytesVerified += n
    if (this.wrongReads.length < 10) this.wrongReads.push(`${what}: ${file.path} @${offset}+${want}: got ${got.length} bytes, ${wrong} wrong`)
  }
}

function add(map: Map<string, number>, key: string, n = 1): void {
  map.set(key, (map.get(key) ?? 0) + n)
}

function show(map: Map<string, number>): string {
  return [...map].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'
}

function fmtBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`
}

// ─── one client ─────────────────────────────────────────────────────────────

/** Caps one hostile behaviour: how many run at once, and how many in all. */
class Gate {
  active = 0
  total = 0
  constructor(
    readonly max: number,
    readonly maxTotal: number,
  ) {}

  enter(): boolean {
    if (this.active >= this.max || this.total >= this.maxTotal) return false
    this.active++
    this.total++
    return true
  }

  leave(): void {
    this.active--
  }
}

interface World {
  url: string
  deadline: number
  data: ReturnType<typeof makeDataset>
  tally: Tally
  live: Live
  requestTimeoutMs: number
  gates: { nonReader: Gate; nackStorm: Gate; slowLine: Gate }
}

/** An operation that must end: one that does not within `ms` counts as hung. */
async function bounded<T>(p: Promise<T>, ms: number, tally: Tally, what: string): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), ms)))
  try {
    const r = await Promise.race([p, late])
    if (r === 'late') {
      tally.hung++
      if (tally.samples.length < 10) tally.samples.push(`${what}: no outcome within ${ms} ms`)
      return undefined
    }
    return r as T
  } finally {
    clearTimeout(timer)
  }
}

/** Read a range through the stream API, hashing as it comes; optionally destroy the stream after `stopAfter` bytes. */
function streamRead(client: Client, file: { path: string }, offset: number, length: number, stopAfter = Infinity): Promise<{ got: Buffer; complete: boolean }> {
  return new Promise((resolve, reject) => {
    const stream = client.read(file.path, { offset, length })
    const chunks: Buffer[] = []
    let got = 0
    let complete = false
    stream.on('data', (c: Buffer) => {
      chunks.push(c)
      got += c.length
      if (got >= stopAfter) stream.destroy()
    })
    stream.on('end', () => (complete = true))
    stream.on('error', reject)
    stream.on('close', () => resolve({ got: Buffer.concat(chunks), complete }))
  })
}

// ─── raw connections: the hostile behaviours ────────────────────────────────

/** A raw protocol peer: request lines written by hand, frames decoded as they come (or never read at all). */
interface Raw {
  socket: net.Socket
  closed: boolean
  invalid: string | null
  send(line: object | string): void
  /** Wait until `pred` holds (checked on every frame and on close); false after `ms`. */
  until(pred: () => boolean, ms: number): Promise<boolean>
}

async function rawConnect(url: string, onFrame?: (f: ReceivedFrame) => void): Promise<Raw> {
  const addr = parseAddress(url)
  const socket = addr.kind === 'unix' ? net.connect(addr.path) : net.connect({ host: addr.host, port: addr.port })
  const waiters = new Set<() => void>()
  const wake = () => {
    for (const w of [...waiters]) w()
  }
  const raw: Raw = {
    socket,
    closed: false,
    invalid: null,
    send(line) {
      if (!socket.destroyed && socket.writable) socket.write((typeof line === 'string' ? line : JSON.stringify(line)) + '\n')
    },
    until(pred, ms) {
      return new Promise((resolve) => {
        const check = () => {
          if (!pred()) return
          waiters.delete(check)
          clearTimeout(timer)
          resolve(true)
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          resolve(false)
        }, ms)
        waiters.add(check)
        check()
      })
    },
  }
  socket.on('error', () => {}) // a reset after the server's close is an outcome, seen as 'close'
  socket.once('close', () => {
    raw.closed = true
    wake()
  })
  if (onFrame) {
    const decoder = new FrameDecoder({
      onFrame: (f) => {
        onFrame(f)
        wake()
      },
      onInvalid: (reason) => {
        raw.invalid = reason
        wake()
      },
    })
    socket.on('data', (c: Buffer) => decoder.write(c))
  } else socket.pause() // a non-reader: nothing is taken off the socket beyond what Node buffers on its own
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('raw connect: no connection within 10 s')), 10_000)
    socket.once('connect', () => (clearTimeout(timer), resolve()))
    socket.once('error', (err) => (clearTimeout(timer), reject(err)))
  })
  return raw
}

const payloadJson = (f: ReceivedFrame): any => {
  try {
    return JSON.parse(f.payload.toString())
  } catch {
    return null
  }
}

/** Connect, ask for several big files, never read a byte of the answers, hold the connection a while, drop it. */
async function nonReader(w: World, r: Rng): Promise<void> {
  const { tally, data } = w
  const c = await rawConnect(w.url)
  try {
    const n = 2 + r.int(4)
    for (let id = 1; id <= n; id++) c.send({ id, op: 'read', path: r.pick(data.big).path })
    const hold = 1000 + r.int(4000)
    // Whole lines went out, and the server's idle timeout is minutes: it has no reason to close this.
    if (await c.until(() => c.closed, hold)) tally.unexpectedly('non-reader closed by the server', `non-reader: the server closed the connection within ${hold} ms`)
    add(tally.hostile, 'non-readers')
    add(tally.hostile, 'unread reads', n)
    add(tally.hostile, 'held ms', hold)
    tally.ok('non-reader')
  } finally {
    c.socket.destroy()
  }
}

/** One read on a NACK storm's connection, and what came back for it in epoch 0 and in the epoch of its last NACK. */
interface StormRead {
  id: number
  file: DataFile
  offset: number
  want: number
  /** Frames of the first attempt (epoch 0), and of the attempt the last NACK asked for. */
  first: ReceivedFrame[]
  firstEnd: ReceivedFrame | null
  epoch: number
  last: ReceivedFrame[]
  lastEnd: ReceivedFrame | null
  /** Where the NACKs asked the resend to start: frame `seq`, `offset` bytes into the range. */
  resume: { seq: number; offset: number }
  cancelled: boolean
}

const TERMINAL = new Set<number>([FrameType.END, FrameType.ERROR, FrameType.RESULT])

/** DATA payloads of one attempt, joined, and whether its frames make a well-formed read (START/RESYNC, DATA in seq order, END). */
function attemptBytes(frames: ReceivedFrame[], from: number): { got: Buffer; problem: string | null } {
  const parts: Buffer[] = []
  let seq = from
  let problem: string | null = null
  for (const f of frames) {
    if (!f.intact) problem ??= `frame ${f.type}/${f.seq} failed its digest on loopback`
    if (f.type === FrameType.RESYNC || f.type === FrameType.PROGRESS) continue
    if (f.seq !== seq) problem ??= `frame type ${f.type} with seq ${f.seq} where ${seq} was due`
    seq = f.seq + 1
    if (f.type === FrameType.DATA) parts.push(f.payload)
    if (TERMINAL.has(f.type)) break
  }
  return { got: Buffer.concat(parts), problem }
}

/**
 * Many reads, cancelled at once and then each NACKed; then a few reads
 * left to finish, each NACKed several times in a row from a random frame.
 * A cancelled request is forgotten (ERROR ECORRUPT in the NACK's epoch);
 * one that had finished is sent again (RESYNC, then the rest of the read),
 * and every resent byte is checked.
 */
async function nackStorm(w: World, r: Rng): Promise<void> {
  const { tally, data } = w
  const reads = new Map<number, StormRead>()
  let hello = false as boolean
  const stray: string[] = []
  const c = await rawConnect(w.url, (f) => {
    if (f.id === 0) {
      if (f.type === FrameType.HELLO) hello = true
      else stray.push(`frame type ${f.type} on id 0: ${f.payload.toString().slice(0, 200)}`)
      return
    }
    const rd = reads.get(f.id)
    if (!rd) return void stray.push(`frame type ${f.type} for id ${f.id}, never asked for`)
    if (f.epoch === 0) {
      if (rd.firstEnd) {
        if (TERMINAL.has(f.type)) stray.push(`id ${f.id}: a second terminal frame (type ${f.type}) in epoch 0`)
        return
      }
      rd.first.push(f)
      if (TERMINAL.has(f.type)) rd.firstEnd = f
    } else if (f.epoch === (rd.epoch & 0xff) && !rd.lastEnd) {
      rd.last.push(f)
      if (TERMINAL.has(f.type)) rd.lastEnd = f
    }
  })
  const newRead = (id: number, file: DataFile, whole: boolean, cancelled: boolean): StormRead => {
    const offset = whole ? 0 : r.int(file.data.length)
    const want = whole ? file.data.length : Math.min(1 + r.int(MiB), file.data.length - offset)
    const rd: StormRead = { id, file, offset, want, first: [], firstEnd: null, epoch: 0, last: [], lastEnd: null, resume: { seq: 0, offset: 0 }, cancelled }
    reads.set(id, rd)
    c.send({ id, op: 'read', path: file.path, offset, length: want })
    return rd
  }
  const what = 'nack storm'
  try {
    if (!(await c.until(() => hello || c.closed, 10_000))) return void tally.unexpectedly('nack storm: no HELLO', `${what}: no HELLO within 10 s`)
    // Many reads (beyond the 32 a connection runs at once, sometimes), cancelled, then NACKed.
    const n = 8 + r.int(33)
    const storm = Array.from({ length: n }, (_, i) => newRead(i + 1, r.chance(0.3) ? r.pick(data.big) : r.pick(data.small), r.chance(0.5), true))
    await sleep(r.int(20))
    for (const rd of storm) c.send({ id: rd.id, op: 'cancel' })
    for (const rd of storm) {
      rd.epoch = 1
      c.send({ id: rd.id, op: 'nack', seq: 0, offset: 0, resync: 1 })
    }
    // Reads that finish first, then are NACKed 1–4 times in a row, from a frame they had whole.
    const done = Array.from({ length: 1 + r.int(6) }, (_, i) => newRead(n + 1 + i, r.pick(data.small), r.chance(0.7), false))
    if (!(await c.until(() => c.closed || done.every((rd) => rd.firstEnd), 30_000))) {
      tally.hung++
      return void tally.samples.push(`${what}: reads not finished within 30 s`)
    }
    let nacks = n
    for (const rd of done) {
      const pages = rd.first.filter((f) => f.type === FrameType.DATA)
      const j = r.int(pages.length + 1) // the receiver had the first j pages
      rd.resume = j === 0 && r.chance(0.5) ? { seq: 0, offset: 0 } : { seq: j + 1, offset: pages.slice(0, j).reduce((k, f) => k + f.payload.length, 0) }
      const k = 1 + r.int(4)
      rd.epoch = k
      for (let resync = 1; resync <= k; resync++) c.send({ id: rd.id, op: 'nack', ...rd.resume, resync })
      nacks += k
    }
    const all = [...reads.values()]
    // A NACK supersedes the attempt before it: that one may end without a terminal frame (its queued frames are dropped).
    if (!(await c.until(() => c.closed || all.every((rd) => rd.lastEnd), 30_000))) {
      tally.hung++
      const waiting = all.filter((rd) => !rd.lastEnd)
      const frames = (fs: ReceivedFrame[]) => fs.map((f) => (f.type === FrameType.ERROR ? `ERROR ${payloadJson(f)?.code}` : (Object.keys(FrameType) as string[])[f.type - 1])).join(' ') || 'nothing'
      const told = waiting.map((rd) => `id ${rd.id} (${rd.cancelled ? 'cancelled' : 'finished'}, ${rd.epoch} NACKs): epoch 0: ${frames(rd.first)}; epoch ${rd.epoch}: ${frames(rd.last)}`)
      return void tally.samples.push(`${what}: no answer in the NACK's epoch within 30 s for ${waiting.length} of ${all.length} reads (${n} cancelled); ${told.slice(0, 3).join('; ')}`)
    }
    if (c.closed) return void tally.unexpectedly('nack storm: connection closed', `${what}: the server closed the connection`)
    if (c.invalid) tally.unexpectedly('nack storm: bad frame', `${what}: ${c.invalid}`)
    for (const s of stray.slice(0, 3)) tally.unexpectedly('nack storm: stray frame', `${what}: ${s}`)

    for (const rd of all) {
      const label = `${what} id ${rd.id} (${rd.cancelled ? 'cancelled' : 'finished'})`
      // The first attempt: the whole range and END, or ECANCELED, or (cancelled, then superseded by the NACK) neither.
      const end = rd.firstEnd
      if (end === null) {
        if (!rd.cancelled) tally.unexpectedly('nack storm: first attempt', `${label}: no END before the NACKs`)
      } else if (end.type === FrameType.END) {
        const { got, problem } = attemptBytes(rd.first, 0)
        if (problem) tally.unexpectedly('nack storm: malformed read', `${label}: ${problem}`)
        tally.verify(rd.file, rd.offset, rd.want, got, sha256(got), label)
      } else if (end.type !== FrameType.ERROR || payloadJson(end)?.code !== 'ECANCELED' || !rd.cancelled) {
        tally.unexpectedly('nack storm: first attempt', `${label}: first attempt ended with type ${end.type} ${end.payload.toString().slice(0, 200)}`)
      } else add(tally.hostile, 'ECANCELED')
      // The answer to the last NACK: a cancelled request is forgotten (ECORRUPT); a finished one is sent again.
      const head = rd.last[0]
      if (head.type === FrameType.ERROR) {
        const code = payloadJson(head)?.code
        // Only a request the cancel ended is forgotten; one that had finished is remembered.
        if (code === 'ECORRUPT' && rd.cancelled && end?.type !== FrameType.END) add(tally.hostile, 'NACK → ECORRUPT')
        else tally.unexpectedly(`nack storm: ERROR ${code}`, `${label}: NACK answered ${head.payload.toString().slice(0, 200)} after a first attempt ending ${end ? `with type ${end.type}` : 'with nothing'}`)
        continue
      }
      if (head.type !== FrameType.RESYNC) {
        tally.unexpectedly('nack storm: no RESYNC', `${label}: the resend began with frame type ${head.type}`)
        continue
      }
      const body = payloadJson(head)
      if (body?.resync !== rd.epoch || body?.seq !== rd.resume.seq || body?.offset !== rd.resume.offset || head.seq !== rd.resume.seq) {
        tally.unexpectedly('nack storm: wrong RESYNC', `${label}: RESYNC ${head.payload.toString()} (header seq ${head.seq}) for NACK ${rd.epoch} at seq ${rd.resume.seq}, offset ${rd.resume.offset}`)
        continue
      }
      if (end !== null && end.type !== FrameType.END) tally.unexpectedly('nack storm: cancelled read resent', `${label}: resent after its first attempt ended ECANCELED`)
      if (rd.lastEnd!.type !== FrameType.END) {
        tally.unexpectedly('nack storm: resend failed', `${label}: resend ended ${rd.lastEnd!.payload.toString().slice(0, 200)}`)
        continue
      }
      const { got, problem } = attemptBytes(rd.last, rd.resume.seq)
      if (problem) tally.unexpectedly('nack storm: malformed resend', `${label}: ${problem}`)
      tally.verify(rd.file, rd.offset + rd.resume.offset, rd.want - rd.resume.offset, got, sha256(got), `${label} resent`)
      add(tally.hostile, 'NACK → RESYNC')
      add(tally.hostile, 'resent bytes', got.length)
    }
    add(tally.hostile, 'nack storms')
    add(tally.hostile, 'NACKs sent', nacks)
    tally.ok('nack storm')
  } finally {
    c.socket.destroy()
  }
}

/**
 * A request line trickled one byte at a time, far slower than the server's
 * request deadline, or (one in four) no request at all: the server must answer
 * ERROR ETIMEDOUT on id 0, or at least close, soon after its deadline.
 */
async function slowLine(w: World, r: Rng): Promise<void> {
  const { tally, data } = w
  let hello = false as boolean
  let error0 = null as ReceivedFrame | null
  const other: ReceivedFrame[] = []
  const c = await rawConnect(w.url, (f) => {
    if (f.type === FrameType.HELLO) hello = true
    else if (f.id === 0 && f.type === FrameType.ERROR) error0 ??= f
    else other.push(f)
  })
  const what = 'slow line'
  try {
    if (!(await c.until(() => hello || c.closed, 10_000))) return void tally.unexpectedly('slow line: no HELLO', `${what}: no HELLO within 10 s`)
    const silent = r.chance(0.25)
    // Never the newline: the line cannot end, however late the server is.
    const line = JSON.stringify({ id: 1, op: 'stat', path: r.pick(data.small).path })
    const gap = 150 + r.int(200) // ≥ 40 bytes at ≥ 150 ms each: three times a 2 s deadline
    const since = Date.now()
    const limit = since + w.requestTimeoutMs + 5000
    const over = () => error0 !== null || c.closed
    if (!silent) {
      for (let i = 0; i < line.length && !over() && Date.now() < limit; i++) {
        c.socket.write(line[i])
        await c.until(over, gap)
      }
    }
    await c.until(over, Math.max(0, limit - Date.now()))
    const after = (Date.now() - since) / 1000
    add(tally.hostile, silent ? 'silent connections' : 'slow lines')
    if (other.length > 0) tally.unexpectedly('slow line: answered', `${what}: got frame type ${other[0].type} for id ${other[0].id} on a line never ended`)
    if (error0) {
      const code = payloadJson(error0)?.code
      if (code === 'ETIMEDOUT') {
        add(tally.expected, `ETIMEDOUT (${silent ? 'silent' : 'slow line'})`)
        tally.timeouts.push(after)
      } else tally.unexpectedly(`slow line: ERROR ${code}`, `${what}: ERROR on id 0: ${error0.payload.toString().slice(0, 200)}`)
    } else if (c.closed) {
      add(tally.hostile, 'closed without ERROR')
      tally.timeouts.push(after)
    } else {
      tally.hung++
      tally.samples.push(`${what}: neither ERROR nor close within ${after.toFixed(1)} s (request deadline ${w.requestTimeoutMs / 1000} s)`)
    }
    tally.ok(silent ? 'silent connection' : 'slow line')
  } finally {
    c.socket.destroy()
  }
}

/** Check a read of a live file: all its bytes one version's value (after the writer: its last). */
function checkLive(tally: Tally, live: Live, file: LiveFile, want: number, got: Buffer, afterWriter: boolean, what: string): void {
  const value = afterWriter ? live.last : got[0]
  const valid = afterWriter || got.length === 0 || live.values.has(value)
  let wrong = Math.abs(got.length - want)
  for (let i = 0; i < got.length; i++) if (!valid || got[i] !== value) wrong++
  if (wrong === 0) {
    tally.bytesVerified += got.length
    return
  }
  const seen = new Map<number, number>()
  for (const b of got) seen.set(b, (seen.get(b) ?? 0) + 1)
  tally.wrong(wrong, `${what}: ${file.path} (${want} bytes): got ${got.length} bytes, ${wrong} wrong; byte values ${[...seen].slice(0, 6).map(([v, k]) => `${v}×${k}`).join(' ')}${afterWriter ? `, the writer's last version is ${live.last}` : ''}`)
}

async function worker(w: World, r: Rng): Promise<void> {
  const { tally, data } = w
  // The server drops a connection that sends no request within --request-timeout (2 s here) of
  // connecting: a fresh client asks something at once, before a hostile behaviour can keep it waiting.
  const open = async () => {
    const c = await connect(w.url)
    const file = r.pick(data.small)
    const st = await c.stat(file.path)
    if (st.size !== file.data.length) tally.unexpectedly('wrong stat', `stat ${file.path}: size ${st.size}`)
    else tally.ok('stat')
    return c
  }
  let client = await open()
  const pickFile = () => (r.chance(0.2) ? r.pick(data.big) : r.pick(data.small))
  const dirNames = [...data.dirs.keys()]

  const readWhole = async () => {
    const file = pickFile()
    const got = await client.readFile(file.path)
    tally.verify(file, 0, file.data.length, got, sha256(got), 'read')
    tally.ok('read')
  }
  const readRange = async () => {
    const file = pickFile()
    const offset = r.int(file.data.length + 1)
    const length = r.int(Math.min(file.data.length, 2 * MiB) + 1)
    const want = Math.min(length, file.data.length - offset)
    const { got } = await streamRead(client, file, offset, length)
    tally.verify(file, offset, want, got, sha256(got), 'range')
    tally.ok('range')
  }
  const ls = async () => {
    const dir = r.pick(dirNames)
    const entries = await client.ls(dir)
    const names = entries.map((e) => e.name)
    const want = data.dirs.get(dir)!
    if (names.length !== want.length || names.some((n, i) => n !== want[i]) || entries.some((e) => e.type !== 'file')) {
      add(tally.unexpected, 'wrong ls')
      if (tally.samples.length < 10) tally.samples.push(`ls ${dir}: ${names.length} entries, expected ${want.length}`)
    } else tally.ok('ls')
  }
  const stat = async () => {
    const file = pickFile()
    const st = await client.stat(file.path)
    if (st.size !== file.data.length || st.type !== 'file') {
      add(tally.unexpected, 'wrong stat')
      if (tally.samples.length < 10) tally.samples.push(`stat ${file.path}: size ${st.size}, type ${st.type}`)
    } else tally.ok('stat')
  }
  const readMany = async () => {
    const files = Array.from({ length: 3 + r.int(6) }, () => r.pick(data.small))
    let i = 0
    for await (const { path, data: got } of client.readMany(files.map((f) => f.path), { inFlight: 4 })) {
      const file = files[i++]
      if (file.path !== path) throw new Error(`readMany yielded ${path} in the place of ${file.path}`)
      tally.verify(file, 0, file.data.length, got, sha256(got), 'readMany')
    }
    tally.ok('readMany')
    add(tally.served, 'readMany files', files.length)
  }
  const abandon = async () => {
    const file = r.pick(data.big)
    const stopAfter = 1 + r.int(2 * MiB)
    const { got, complete } = await streamRead(client, file, 0, file.data.length, stopAfter)
    // What arrived before the stream was destroyed is still a prefix of the file.
    tally.verify(file, 0, complete ? file.data.length : got.length, got, sha256(got), 'abandon')
    tally.ok(complete ? 'read' : 'abandoned read')
  }
  const liveRead = async () => {
    const file = r.pick(w.live.files)
    // A read that starts once the writer has exited must see its last version.
    const after = w.live.done
    const whole = r.chance(0.5)
    const offset = whole ? 0 : r.int(file.size)
    const want = whole ? file.size : 1 + r.int(file.size - offset)
    const what = after ? 'live read after the writer' : 'live read'
    try {
      const got = whole ? await client.readFile(file.path) : (await streamRead(client, file, offset, want)).got
      checkLive(tally, w.live, file, want, got, after, what)
      tally.ok(what)
    } catch (err) {
      tally.error(err, what, after ? [] : ['ECHANGED'])
    }
  }
  /** A hostile behaviour, when its gate lets one more in; otherwise a plain read. */
  const hostile = (gate: Gate, fn: (w: World, r: Rng) => Promise<void>) => async () => {
    if (!gate.enter()) return readWhole()
    try {
      await fn(w, r)
    } finally {
      gate.leave()
    }
  }
  const missing = async () => {
    try {
      await client.readFile(`small/none-${r.int(1000)}.jpg`)
      add(tally.unexpected, 'read of a missing file succeeded')
    } catch (err) {
      tally.error(err, 'missing file', ['ENOENT'])
    }
  }
  const disconnect = async () => {
    // Drop the whole connection with reads in flight; they end ECLOSED (or complete, verified).
    const reads = Array.from({ length: 1 + r.int(3) }, () => {
      const file = r.pick(data.big)
      return client.readFile(file.path).then(
        (got) => {
          tally.verify(file, 0, file.data.length, got, sha256(got), 'read before disconnect')
          tally.ok('read')
        },
        (err: unknown) => tally.error(err, 'disconnect with reads in flight', ['ECLOSED']),
      )
    })
    await sleep(r.int(30))
    await client.close()
    await Promise.all(reads)
    tally.ok('disconnect')
    client = await open()
  }

  const actions: [number, () => Promise<void>, string][] = [
    [24, readWhole, 'read'],
    [24, readRange, 'range'],
    [10, ls, 'ls'],
    [10, stat, 'stat'],
    [12, readMany, 'readMany'],
    [10, abandon, 'abandon'],
    [4, missing, 'missing'],
    [4, disconnect, 'disconnect'],
    [6, liveRead, 'live'],
    [2, hostile(w.gates.nonReader, nonReader), 'non-reader'],
    [2, hostile(w.gates.nackStorm, nackStorm), 'nack storm'],
    [2, hostile(w.gates.slowLine, slowLine), 'slow line'],
  ]
  const total = actions.reduce((n, [weight]) => n + weight, 0)
  const choose = () => {
    let x = r.int(total)
    for (const [weight, fn, name] of actions) {
      if ((x -= weight) < 0) return { fn, name }
    }
    return { fn: readWhole, name: 'read' }
  }
  try {
    while (Date.now() < w.deadline) {
      const first = choose()
      if (first.name === 'disconnect') {
        // A failed reconnect ends this worker (the error is counted by its caller).
        await bounded(disconnect(), 60_000, tally, 'disconnect and reconnect')
        continue
      }
      // Mostly one request at a time, sometimes a few at once on this connection.
      const ops = [first, ...Array.from({ length: r.chance(0.2) ? 1 + r.int(3) : 0 }, choose).filter((o) => o.name !== 'disconnect')]
      await bounded(Promise.all(ops.map((o) => o.fn().catch((err: unknown) => tally.error(err, o.name, [])))), 60_000, tally, ops.map((o) => o.name).join('+'))
    }
  } finally {
    await client.close().catch(() => {})
  }
}

// ─── main ───────────────────────────────────────────────────────────────────

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]
}

function rssLine(label: string, kib: number[]): string {
  if (kib.length === 0) return `${label}: no samples`
  const m = (k: number) => (k / 1024).toFixed(1)
  return `${label}: min ${m(Math.min(...kib))}, median ${m(median(kib))}, max ${m(Math.max(...kib))} MiB (${kib.length} samples)`
}

/** One sample of the server: RSS, and the cached bytes its `stats` gave at the same moment (null until it answers). */
interface Sample {
  t: number
  kib: number
  cached: number | null
  phase: 'load' | 'settling' | 'after'
}

/** README, "Memory": the server's RSS stays within 1.05 × the cached bytes + 96 MiB. */
const memoryBound = (cached: number) => 1.05 * cached + 96 * MiB
const overBound = (s: Sample) => s.cached !== null && s.kib * 1024 > memoryBound(s.cached)
const sampleText = (s: Sample) =>
  `RSS ${(s.kib / 1024).toFixed(1)} MiB with ${s.cached === null ? '?' : fmtBytes(s.cached)} cached (bound ${s.cached === null ? '?' : fmtBytes(memoryBound(s.cached))}) at t=${s.t.toFixed(0)} s`

interface ProbeResult {
  t: number
  ms: number
  ok: boolean
  size?: number
  sha?: string
  err?: string
}

const PROBE_LIMIT_MS = 1000

/** Send `signal` to a child we started, by its PID, unless it has exited. */
function signalChild(child: ChildProcess | null, signal: NodeJS.Signals): void {
  if (!child || child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  try {
    process.kill(child.pid, signal)
  } catch {
    // already gone
  }
}

async function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  for (let waited = 0; child.exitCode === null && child.signalCode === null && waited < ms; waited += 50) await sleep(50)
  return child.exitCode !== null || child.signalCode !== null
}

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const root = mkdtempSync(join(tmpdir(), 'cacheserv-soak-'))
  let server: ServerProc | null = null
  let writer: ChildProcess | null = null
  let probe: ChildProcess | null = null
  let exiting = false
  const cleanup = () => {
    signalChild(writer, 'SIGKILL')
    signalChild(probe, 'SIGKILL')
    if (server && server.exit === null && server.child.pid !== undefined) {
      try {
        process.kill(server.child.pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true })
  }
  const onSignal = (signal: NodeJS.Signals) => {
    if (exiting) return
    exiting = true
    console.error(`soak: ${signal}, stopping`)
    cleanup()
    process.exit(1)
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const started = Date.now()
    const data = makeDataset(root)
    const liveFiles = makeLive(root)
    const totalBytes = data.files.reduce((n, f) => n + f.data.length, 0)
    server = await startServer(root, opts.cacheSize, opts.requestTimeout)
    const pid = server.child.pid!
    console.log(`soak: ${opts.seconds} s, ${opts.clients} clients, seed ${opts.seed}; server pid ${pid} on ${server.url}, cache ${opts.cacheSize}, request timeout ${opts.requestTimeout} s`)
    console.log(`data: ${data.big.length} files of ${data.big.map((f) => (f.data.length / MiB).toFixed(1)).join('/')} MiB + ${data.small.length} of ~100 KB in ${data.dirs.size} dirs, ${fmtBytes(totalBytes)} (written in ${Date.now() - started} ms); rewritten in place: ${liveFiles.map((f) => `${f.path} (${f.size} bytes)`).join(', ')}`)

    const tally = new Tally()
    const samples: Sample[] = []
    let phase: Sample['phase'] = 'load'
    const t0 = Date.now()
    const since = () => (Date.now() - t0) / 1000
    // Cached bytes for the memory bound, from a connection of its own; a sample waits for no answer.
    const statsClient = await connect(server.url)
    let statsPending = false
    const sampler = setInterval(() => {
      const kib = rssKiB(pid)
      if (kib === null) return
      const sample: Sample = { t: since(), kib, cached: null, phase }
      samples.push(sample)
      if (statsPending) return
      statsPending = true
      statsClient
        .stats()
        .then((s) => void (sample.cached = s.cacheBytes))
        .catch(() => {})
        .finally(() => (statsPending = false))
    }, 1000)
    const lag = monitorEventLoopDelay({ resolution: 10 })
    lag.enable()

    // The probe, in a process of its own (this one's event loop is busy checking bytes).
    const probes: ProbeResult[] = []
    const probeFile = data.small[0]
    const probeSha = sha256(probeFile.data.subarray(0, 4096))
    let probeErr = ''
    let probeStopped = false
    probe = spawn(process.execPath, [PROBE, server.url, probeFile.path], { stdio: ['pipe', 'pipe', 'pipe'] })
    const probeProc = probe
    probe.stderr!.on('data', (c: Buffer) => (probeErr += c.toString()))
    createInterface({ input: probe.stdout! }).on('line', (line) => probes.push(JSON.parse(line) as ProbeResult))
    let probeExit = ''
    probe.once('exit', (code, signal) => (probeExit = probeStopped ? '' : `exited ${code ?? signal} before the soak stopped it: ${probeErr.slice(-300)}`))

    // The in-place writer: versions for the first 60% of the time (at most 45 s), then the last one stays.
    const r = rng(opts.seed)
    const live: Live = { files: liveFiles, values: new Set([versionValue(0)]), written: 0, last: versionValue(0), done: false, exit: 'running', startedAt: 0, endedAt: 0 }
    const writerMs = Math.min(opts.seconds * 600, 45_000)
    const steps = writerPlan(rng(r.seed()), writerMs)
    for (const [, value] of steps) live.values.add(value)
    writer = startWriter(root, live, steps, writerMs, t0)

    const progress = setInterval(() => {
      const last = samples.at(-1)
      const served = [...tally.served].reduce((n, [k, v]) => (k === 'readMany files' ? n : n + v), 0)
      const slowest = probes.length ? Math.max(...probes.map((p) => p.ms)) : NaN
      console.error(`  t=${Math.round(since())} s: ${served} requests, ${fmtBytes(tally.bytesVerified)} verified, ${tally.wrongBytes} wrong, ${[...tally.unexpected.values()].reduce((a, b) => a + b, 0)} unexpected errors, server RSS ${last ? (last.kib / 1024).toFixed(1) : '?'} MiB, ${live.written} versions written, slowest probe ${slowest} ms`)
    }, 5000)

    const world: World = {
      url: server.url,
      deadline: t0 + opts.seconds * 1000,
      data,
      tally,
      live,
      requestTimeoutMs: opts.requestTimeout * 1000,
      gates: { nonReader: new Gate(3, 10_000), nackStorm: new Gate(2, 10_000), slowLine: new Gate(3, 10_000) },
    }
    // A dead server ends the soak at once: the workers would only collect ECLOSED/ECONNECT.
    server.child.once('exit', () => (world.deadline = 0))
    const workers = Array.from({ length: opts.clients }, () =>
      worker(world, rng(r.seed())).catch((err: unknown) => {
        // A worker that could not (re)connect: its error is the finding.
        tally.error(err, 'worker', [])
      }),
    )
    // Every worker stops at the deadline, after its current operation (each bounded to 60 s).
    const overdue = new AbortController()
    const allDone = await Promise.race([Promise.all(workers).then(() => true), sleep(opts.seconds * 1000 + 90_000, false, { signal: overdue.signal }).catch(() => false)])
    overdue.abort() // the timer must not keep the process alive
    if (!allDone) {
      tally.hung++
      tally.samples.push('workers still running 90 s after the deadline')
    }
    const elapsed = since()

    // The writer stops by itself within its time; one still writing 10 s later is stopped by its PID.
    if (!(await waitExit(writer, Math.max(0, writerMs + 10_000 - (elapsed - live.startedAt) * 1000)))) {
      signalChild(writer, 'SIGKILL')
      tally.unexpectedly('writer overran', `in-place writer still running ${writerMs / 1000 + 10} s after it started; killed`)
    }
    for (let i = 0; i < 40 && !live.done; i++) await sleep(50) // its last report
    if (live.exit !== 'exited 0') tally.unexpectedly('writer failed', `in-place writer ${live.exit}`)

    // The server's own view, from a last connection (also proves it still answers), and the live files' last version.
    let serverStats = 'unavailable'
    const alive = server.exit === null
    if (alive) {
      const c = await bounded(connect(server.url), 10_000, tally, 'final connect').catch((err: unknown) => {
        tally.error(err, 'final connect', [])
        return undefined
      })
      if (c) {
        for (const file of live.files) {
          const got = await bounded(c.readFile(file.path), 10_000, tally, `final read of ${file.path}`).catch((err: unknown) => tally.error(err, 'live final read', []))
          if (got) {
            checkLive(tally, live, file, file.size, got, true, 'final read')
            tally.ok('live final read')
          }
        }
        const s = await c.stats().catch(() => null)
        if (s) serverStats = `hits ${s.hits}, misses ${s.misses}, evictions ${s.evictions}, disk reads ${s.diskReads}, cache ${fmtBytes(s.cacheBytes)} of ${fmtBytes(s.cacheLimit)}, ${fmtBytes(s.bytesServed)} served, ${s.totalConnections} connections, ${s.nacks} NACKs`
        await c.close()
      }
    }

    // Memory once the load has stopped: wait a few seconds, then sample again (the probe goes on meanwhile).
    if (server.exit === null) {
      phase = 'settling'
      await sleep(5000)
      phase = 'after'
      await sleep(3500)
      for (let i = 0; i < 20 && statsPending; i++) await sleep(50)
    }
    clearInterval(sampler)
    clearInterval(progress)
    lag.disable()
    await statsClient.close().catch(() => {})
    probeStopped = true
    // Probes are due once a second from the probe's start (just after t0) until now.
    const probeSpan = since() - 1
    signalChild(probeProc, 'SIGTERM')
    if (!(await waitExit(probeProc, 7000))) signalChild(probeProc, 'SIGKILL')

    const serverErrors = (server.stderr().match(/failed on a bug/g) ?? []).length
    // Node's warning for a FileHandle nobody closed: a leaked file descriptor, held until a GC.
    const leakedHandles = (server.stderr().match(/Closing file descriptor \d+ on garbage collection/g) ?? []).length
    const died = server.exit as ServerProc['exit']

    // Stop the server by its PID: SIGTERM, then SIGKILL if it lingers.
    let stopped = 'was already dead'
    const proc = server
    const exitOf = () => proc.exit // read afresh: the exit handler sets it while we wait
    if (exitOf() === null) {
      process.kill(pid, 'SIGTERM')
      for (let i = 0; i < 100 && exitOf() === null; i++) await sleep(100)
      const exit = exitOf()
      if (exit === null) {
        process.kill(pid, 'SIGKILL')
        for (let i = 0; i < 50 && exitOf() === null; i++) await sleep(100)
        stopped = 'needed SIGKILL after 10 s'
      } else stopped = `exited ${exit.code ?? exit.signal} on SIGTERM`
    }

    const during = samples.filter((s) => s.phase === 'load')
    const after = samples.filter((s) => s.phase === 'after')
    const kib = during.map((s) => s.kib)
    const first = during.filter((s) => s.t <= 10).map((s) => s.kib)
    const last = during.filter((s) => s.t > elapsed - 10).map((s) => s.kib)
    const served = [...tally.served].filter(([k]) => k !== 'readMany files')
    const requests = served.reduce((n, [, v]) => n + v, 0)
    const unexpected = [...tally.unexpected.values()].reduce((a, b) => a + b, 0) + serverErrors + leakedHandles
    const h = (k: string) => tally.hostile.get(k) ?? 0
    const e = (k: string) => tally.expected.get(k) ?? 0
    console.log(`\nrequests served: ${requests} in ${elapsed.toFixed(1)} s (${(requests / elapsed).toFixed(0)}/s): ${show(new Map(served))}; readMany files ${tally.served.get('readMany files') ?? 0}`)
    console.log(`bytes verified: ${fmtBytes(tally.bytesVerified)} (${(tally.bytesVerified / MiB / elapsed).toFixed(0)} MiB/s), sha256 against the files written`)
    console.log(`wrong bytes: ${tally.wrongBytes}${tally.wrongReads.length ? `\n  ${tally.wrongReads.join('\n  ')}` : ''}`)
    console.log(`errors, expected: ${show(tally.expected)}`)
    console.log(`errors, unexpected: ${show(tally.unexpected)}${serverErrors ? `; server logged ${serverErrors} request(s) failed on a bug` : ''}${leakedHandles ? `; server leaked ${leakedHandles} file handles (closed later by its garbage collector)` : ''}${tally.hung ? `; ${tally.hung} hung` : ''}${tally.samples.length ? `\n  ${tally.samples.join('\n  ')}` : ''}`)
    const t = [...tally.timeouts].sort((a, b) => a - b)
    console.log(
      `non-readers: ${h('non-readers')} connections, ${h('unread reads')} big-file reads never read, held ${h('non-readers') ? (h('held ms') / h('non-readers') / 1000).toFixed(1) : 0} s on average, then dropped`,
    )
    console.log(
      `NACK storms: ${h('nack storms')} connections, ${h('NACKs sent')} NACKs: ${h('NACK → RESYNC')} reads answered RESYNC (${fmtBytes(h('resent bytes'))} resent and verified), ${h('NACK → ECORRUPT')} ECORRUPT (cancelled, so forgotten); ${h('ECANCELED')} reads ended ECANCELED first`,
    )
    console.log(
      `slow request lines: ${h('slow lines')} trickled + ${h('silent connections')} silent: ETIMEDOUT on id 0 ${e('ETIMEDOUT (slow line)') + e('ETIMEDOUT (silent)')}, closed without ERROR ${h('closed without ERROR')}; ${t.length ? `${t[0].toFixed(1)}–${t.at(-1)!.toFixed(1)} s (median ${median(t).toFixed(1)}) after the first byte or HELLO` : 'none timed'}, deadline ${opts.requestTimeout} s`,
    )
    const liveServed = tally.served.get('live read') ?? 0
    const liveAfter = tally.served.get('live read after the writer') ?? 0
    console.log(
      `in-place writer: ${live.written} versions of ${live.files.length} files (${live.files.map((f) => f.path).join(', ')}) from t=${live.startedAt.toFixed(1)} to ${live.endedAt.toFixed(1)} s, ${live.exit}; reads while it wrote: ${liveServed} whole versions, ${e('ECHANGED (live)')} ECHANGED; after it: ${liveAfter} reads and ${tally.served.get('live final read') ?? 0} final reads, each its last version unless counted wrong above`,
    )
    const probeFailed = probes.filter((p) => !p.ok || p.ms > PROBE_LIMIT_MS || p.size !== probeFile.data.length || p.sha !== probeSha)
    const ms = probes.map((p) => p.ms)
    const probesMissing = probes.length < Math.floor(probeSpan * 0.8)
    console.log(
      `probe (own process, 1/s: connect, stat, read 4 KiB): ${probes.length} probes, median ${median(ms)} ms, max ${ms.length ? Math.max(...ms) : NaN} ms; ${probeFailed.length} over ${PROBE_LIMIT_MS} ms or failed${probeFailed.length ? `\n  ${probeFailed.slice(0, 5).map((p) => `t=${p.t.toFixed(0)} s: ${p.ms} ms, ${p.ok ? (p.ms > PROBE_LIMIT_MS ? 'too slow' : `wrong answer (size ${p.size})`) : p.err}`).join('\n  ')}` : ''}${probeExit ? `; probe ${probeExit}` : ''}`,
    )
    console.log(`soak process event loop: max lag ${(lag.max / 1e6).toFixed(0)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(0)} ms`)
    console.log(`server RSS over time (${during.length} samples during the load, 1/s):`)
    console.log(`  ${rssLine('all', kib)}`)
    console.log(`  ${rssLine('first 10 s', first)}`)
    console.log(`  ${rssLine('last 10 s', last)}`)
    console.log(`  last 10 s median − first 10 s median: ${((median(last) - median(first)) / 1024).toFixed(1)} MiB`)
    console.log(`  timeline (MiB, every 5 s): ${during.filter((_, i) => i % 5 === 0).map((s) => (s.kib / 1024).toFixed(0)).join(' ')}`)
    console.log(`  5 s after the load: ${after.map((s) => (s.kib / 1024).toFixed(1)).join(', ') || 'no samples'} MiB`)
    const judged = during.filter((s) => s.cached !== null)
    const over = judged.filter(overBound)
    const worst = judged.reduce<Sample | null>((w, s) => (w === null || s.kib * 1024 - memoryBound(s.cached!) > w.kib * 1024 - memoryBound(w.cached!) ? s : w), null)
    const afterLast = after.filter((s) => s.cached !== null).at(-1) ?? null
    const memoryDuring = judged.length > 0 && over.length === 0
    const memoryAfter = afterLast !== null && !overBound(afterLast)
    console.log('memory bound (README: RSS ≤ 1.05 × cached bytes + 96 MiB):')
    console.log(`  during the load: ${memoryDuring ? 'pass' : 'FAIL'}: ${over.length} of ${judged.length} samples over; closest to or furthest over: ${worst ? sampleText(worst) : 'no samples'}`)
    console.log(`  5 s after the load: ${memoryAfter ? 'pass' : 'FAIL'}: ${afterLast ? sampleText(afterLast) : 'no sample'}`)
    console.log(`server: ${alive ? 'alive at the end' : `DIED during the soak (${died?.code ?? died?.signal})`}, ${stopped}; ${serverStats}`)
    if (!alive || serverErrors || leakedHandles) console.log(`server stderr (tail):\n${server.stderr().slice(-1500)}`)
    const reasons = [
      tally.wrongBytes > 0 && `${tally.wrongBytes} wrong bytes`,
      unexpected - serverErrors - leakedHandles > 0 && `${unexpected - serverErrors - leakedHandles} unexpected errors`,
      serverErrors > 0 && `${serverErrors} requests failed on a server bug`,
      leakedHandles > 0 && `${leakedHandles} leaked file handles`,
      tally.hung > 0 && `${tally.hung} hung operations`,
      !alive && 'the server died',
      probeFailed.length > 0 && `${probeFailed.length} probes over ${PROBE_LIMIT_MS} ms or failed`,
      (probeExit || probesMissing) && `the probe ran ${probes.length} times in ${probeSpan.toFixed(0)} s${probeExit ? ` and ${probeExit}` : ''}`,
      !memoryDuring && 'RSS over the memory bound during the load',
      !memoryAfter && 'RSS over the memory bound after the load',
    ].filter(Boolean)
    console.log(reasons.length ? `soak: FAILED (${reasons.join(', ')})` : 'soak: ok')
    const failed = reasons.length > 0
    return failed ? 1 : 0
  } finally {
    cleanup()
  }
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(`soak: ${(err as Error)?.stack ?? String(err)}`)
  return 1
})
