/**
 * Soak test: a real server process under many concurrent clients for a
 * bounded time, every byte checked.
 *
 *   node dist/bench/soak.js [--seconds 60] [--clients 32] [--cache-size 32MiB] [--seed N]
 *
 * It writes a dataset to a temp dir (a few files of several MiB, hundreds of
 * ~100 KB), starts dist/bin/cacheserv-pipe.js directly (so its shebang and
 * node flags apply) with a cache smaller than the data, and runs the clients
 * in this process. Each loops over: whole-file reads, random ranges, ls,
 * stat, readMany, reads abandoned part-way (stream destroyed), connections
 * dropped with reads in flight (then reconnects), and reads of a missing
 * file. Every byte received is checked against the file written (sha256 of
 * the range); the server's RSS is sampled every second.
 *
 * Exit status: 0 when no byte was wrong, no error was unexpected, nothing
 * hung and the server lived; 1 otherwise; 2 on a usage error.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { type Client, connect } from '../lib/client/client.js'
import { CacheservError } from '../lib/errors.js'

const SERVER_BIN = fileURLToPath(new URL('../bin/cacheserv-pipe.js', import.meta.url))
const MiB = 1024 * 1024

// ─── options ────────────────────────────────────────────────────────────────

interface Options {
  seconds: number
  clients: number
  cacheSize: string
  seed: number
}

function usage(message: string): never {
  console.error(`soak: ${message}\nusage: node dist/bench/soak.js [--seconds N] [--clients N] [--cache-size SIZE] [--seed N]`)
  process.exit(2)
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { seconds: 60, clients: 32, cacheSize: '32MiB', seed: randomBytes(4).readUInt32BE(0) }
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

// ─── the server process ─────────────────────────────────────────────────────

interface ServerProc {
  child: ChildProcess
  url: string
  exit: { code: number | null; signal: NodeJS.Signals | null } | null
  stderr: () => string
}

async function startServer(root: string, cacheSize: string): Promise<ServerProc> {
  try {
    accessSync(SERVER_BIN, constants.X_OK)
  } catch {
    // `tsc` alone does not set the bit that `npm run build` sets; the shebang needs it.
    chmodSync(SERVER_BIN, 0o755)
  }
  const child = spawn(SERVER_BIN, ['--root', root, '--port', '0', '--cache-size', cacheSize], { stdio: ['ignore', 'pipe', 'pipe'] })
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

  ok(kind: string): void {
    add(this.served, kind)
  }

  error(err: unknown, what: string, expectedCodes: readonly string[]): void {
    const code = err instanceof CacheservError ? err.code : `${(err as Error)?.name ?? 'non-error'} (not a CacheservError)`
    if (expectedCodes.includes(code)) return add(this.expected, `${code} (${what.split(' ')[0]})`)
    add(this.unexpected, code)
    if (this.samples.length < 10) this.samples.push(`${what}: ${code}: ${(err as Error)?.message ?? String(err)}`)
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

interface World {
  url: string
  deadline: number
  data: ReturnType<typeof makeDataset>
  tally: Tally
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
function streamRead(client: Client, file: DataFile, offset: number, length: number, stopAfter = Infinity): Promise<{ got: Buffer; complete: boolean }> {
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

async function worker(w: World, r: Rng): Promise<void> {
  const { tally, data } = w
  let client = await connect(w.url)
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
    client = await connect(w.url)
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

async function main(): Promise<number> {
  const opts = parseOptions(process.argv.slice(2))
  const root = mkdtempSync(join(tmpdir(), 'cacheserv-soak-'))
  let server: ServerProc | null = null
  let exiting = false
  const cleanup = () => {
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
    const totalBytes = data.files.reduce((n, f) => n + f.data.length, 0)
    server = await startServer(root, opts.cacheSize)
    const pid = server.child.pid!
    console.log(`soak: ${opts.seconds} s, ${opts.clients} clients, seed ${opts.seed}; server pid ${pid} on ${server.url}, cache ${opts.cacheSize}`)
    console.log(`data: ${data.big.length} files of ${data.big.map((f) => (f.data.length / MiB).toFixed(1)).join('/')} MiB + ${data.small.length} of ~100 KB in ${data.dirs.size} dirs, ${fmtBytes(totalBytes)} (written in ${Date.now() - started} ms)`)

    const tally = new Tally()
    const rss: { t: number; kib: number }[] = []
    const t0 = Date.now()
    const sampler = setInterval(() => {
      const kib = rssKiB(pid)
      if (kib !== null) rss.push({ t: (Date.now() - t0) / 1000, kib })
    }, 1000)
    const progress = setInterval(() => {
      const last = rss.at(-1)
      const served = [...tally.served].reduce((n, [k, v]) => (k === 'readMany files' ? n : n + v), 0)
      console.error(`  t=${Math.round((Date.now() - t0) / 1000)} s: ${served} requests, ${fmtBytes(tally.bytesVerified)} verified, ${tally.wrongBytes} wrong, ${[...tally.unexpected.values()].reduce((a, b) => a + b, 0)} unexpected errors, server RSS ${last ? (last.kib / 1024).toFixed(1) : '?'} MiB`)
    }, 5000)

    const world: World = { url: server.url, deadline: t0 + opts.seconds * 1000, data, tally }
    // A dead server ends the soak at once: the workers would only collect ECLOSED/ECONNECT.
    server.child.once('exit', () => (world.deadline = 0))
    const r = rng(opts.seed)
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
    clearInterval(sampler)
    clearInterval(progress)
    const elapsed = (Date.now() - t0) / 1000

    // The server's own view, from a last connection (also proves it still answers).
    let serverStats = 'unavailable'
    const alive = server.exit === null
    if (alive) {
      const c = await bounded(connect(server.url), 10_000, tally, 'final connect').catch((err: unknown) => {
        tally.error(err, 'final connect', [])
        return undefined
      })
      if (c) {
        const s = await c.stats().catch(() => null)
        if (s) serverStats = `hits ${s.hits}, misses ${s.misses}, evictions ${s.evictions}, disk reads ${s.diskReads}, cache ${fmtBytes(s.cacheBytes)} of ${fmtBytes(s.cacheLimit)}, ${fmtBytes(s.bytesServed)} served, ${s.totalConnections} connections, ${s.nacks} NACKs`
        await c.close()
      }
    }
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

    const kib = rss.map((s) => s.kib)
    const first = rss.filter((s) => s.t <= 10).map((s) => s.kib)
    const last = rss.filter((s) => s.t > elapsed - 10).map((s) => s.kib)
    const served = [...tally.served].filter(([k]) => k !== 'readMany files')
    const requests = served.reduce((n, [, v]) => n + v, 0)
    const unexpected = [...tally.unexpected.values()].reduce((a, b) => a + b, 0) + serverErrors + leakedHandles
    console.log(`\nrequests served: ${requests} in ${elapsed.toFixed(1)} s (${(requests / elapsed).toFixed(0)}/s): ${show(new Map(served))}; readMany files ${tally.served.get('readMany files') ?? 0}`)
    console.log(`bytes verified: ${fmtBytes(tally.bytesVerified)} (${(tally.bytesVerified / MiB / elapsed).toFixed(0)} MiB/s), sha256 against the files written`)
    console.log(`wrong bytes: ${tally.wrongBytes}${tally.wrongReads.length ? `\n  ${tally.wrongReads.join('\n  ')}` : ''}`)
    console.log(`errors, expected: ${show(tally.expected)}`)
    console.log(`errors, unexpected: ${show(tally.unexpected)}${serverErrors ? `; server logged ${serverErrors} request(s) failed on a bug` : ''}${leakedHandles ? `; server leaked ${leakedHandles} file handles (closed later by its garbage collector)` : ''}${tally.hung ? `; ${tally.hung} hung` : ''}${tally.samples.length ? `\n  ${tally.samples.join('\n  ')}` : ''}`)
    console.log(`server RSS over time (${rss.length} samples, 1/s):`)
    console.log(`  ${rssLine('all', kib)}`)
    console.log(`  ${rssLine('first 10 s', first)}`)
    console.log(`  ${rssLine('last 10 s', last)}`)
    console.log(`  last 10 s median − first 10 s median: ${((median(last) - median(first)) / 1024).toFixed(1)} MiB`)
    console.log(`  timeline (MiB, every 5 s): ${rss.filter((_, i) => i % 5 === 0).map((s) => (s.kib / 1024).toFixed(0)).join(' ')}`)
    console.log(`server: ${alive ? 'alive at the end' : `DIED during the soak (${died?.code ?? died?.signal})`}, ${stopped}; ${serverStats}`)
    if (!alive || serverErrors || leakedHandles) console.log(`server stderr (tail):\n${server.stderr().slice(-1500)}`)
    const reasons = [
      tally.wrongBytes > 0 && `${tally.wrongBytes} wrong bytes`,
      unexpected - serverErrors - leakedHandles > 0 && `${unexpected - serverErrors - leakedHandles} unexpected errors`,
      serverErrors > 0 && `${serverErrors} requests failed on a server bug`,
      leakedHandles > 0 && `${leakedHandles} leaked file handles`,
      tally.hung > 0 && `${tally.hung} hung operations`,
      !alive && 'the server died',
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
