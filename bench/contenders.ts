/**
 * The contenders of each section. Every one reads the same files, checks the
 * byte count (and the page xor where the bytes reach Node), and returns its
 * figure: GB/s (10^9 bytes per second), files/s, or ms.
 */
import { createReadStream, readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type Client, connect } from '../lib/index.js'
import { type BareAddress, bareBig, bareMany } from './bare.js'
import type { Dataset, FileInfo } from './data.js'
import type { Contender, Sample } from './measure.js'
import { shell, type ShellResult } from './procs.js'
import { pythonBig, pythonMany } from './python.js'
import { type BareServer, CLIENT_BIN, type ProductServer } from './servers.js'
import { BenchError, checkRead, consume, type CpuUse, cpuMeter, now, Toucher, withTimeout, xorPages } from './util.js'

export interface Setup {
  ds: Dataset
  product: ProductServer
  bare: BareServer
  /** Longest one measurement may take, ms. */
  timeoutMs: number
}

/** Single-quote for sh. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`
}

/** Bytes per ms → GB/s. */
const gbps = (bytes: number, ms: number) => bytes / ms / 1e6

/** CPU ms divided by `per` units of work. */
const cpuPer = (cpu: CpuUse, per: number): CpuUse => ({ client: cpu.client / per, server: cpu.server / per })

function checkShell(what: string, r: ShellResult): void {
  if (r.code !== 0 || r.stderr.trim() !== '') throw new BenchError(`${what}: exit ${r.code ?? r.signal}${r.stderr ? `: ${r.stderr.trim()}` : ''}`)
}

/** `{ CMD || report; } | cat > /dev/null`, so a failure of the first command is seen although sh has no pipefail. */
function intoCat(cmd: string): string {
  return `{ ${cmd} || echo "exit status $?: ${cmd.replace(/["$`\\]/g, '')}" >&2; } | cat > /dev/null`
}

// ─── 1. The big file, hot ────────────────────────────────────────────────────

export function hotContenders(s: Setup): Contender[] {
  const { big } = s.ds
  const abs = join(s.ds.root, big.path)
  const t = s.timeoutMs

  /** How a library contender reads the big file: into a Toucher, which it returns. */
  type Way = (client: Client) => Promise<Toucher>
  // read(): a Readable consumed through 'data' events.
  const stream: Way = (client) => consume(client.read(big.path))
  // readChunks: each verified piece to a callback that touches it, as the bare client's 'data' handler does.
  const chunks: Way = async (client) => {
    const read = new Toucher()
    await client.readChunks(big.path, (chunk) => read.touch(chunk))
    return read
  }
  const library = (key: string, label: string, url: string, way: Way): Contender => ({
    key,
    label,
    unit: 'GB/s',
    run: async () => {
      const client = await connect(url)
      try {
        const cpu = cpuMeter(s.product.child.pid)
        const t0 = now()
        const read = await withTimeout(way(client), t, label)
        const ms = now() - t0
        const used = cpu()
        checkRead(label, read, big)
        return { value: gbps(read.bytes, ms), cpu: cpuPer(used, read.bytes / 1e9) } satisfies Sample
      } finally {
        await client.close()
      }
    },
  })
  const bare = (key: string, label: string, addr: BareAddress): Contender => ({
    key,
    label,
    unit: 'GB/s',
    run: async () => {
      const cpu = cpuMeter(s.bare.child.pid)
      const { ms, read } = await withTimeout(bareBig(addr), t, label)
      const used = cpu()
      checkRead(label, read, big)
      return { value: gbps(read.bytes, ms), cpu: cpuPer(used, read.bytes / 1e9) } satisfies Sample
    },
  })
  const pipeline = (key: string, label: string, cmd: string, verify?: string): Contender => ({
    key,
    label,
    unit: 'GB/s',
    run: async () => {
      const r = await shell(label, cmd, t)
      checkShell(label, r)
      return gbps(big.size, r.ms)
    },
    // The timed runs end in /dev/null; instead of a warm-up run, check the bytes once (cmp against the file).
    ...(verify
      ? {
          warm: async () => {
            const r = await shell(`${label} (check)`, verify, t)
            checkShell(`${label} (check: cmp with the file)`, r)
            return 'bytes checked'
          },
        }
      : {}),
  })
  const cli = `${q(CLIENT_BIN)} --server ${q(s.product.tcp)} read ${q(big.path)}`
  return [
    library('lib-tcp', 'library tcp read() stream', s.product.tcp, stream),
    library('lib-unix', 'library unix read() stream', s.product.unix, stream),
    library('chunks-tcp', 'library tcp readChunks', s.product.tcp, chunks),
    library('chunks-unix', 'library unix readChunks', s.product.unix, chunks),
    bare('bare-tcp', 'bare pair tcp', s.bare.tcp),
    bare('bare-unix', 'bare pair unix', s.bare.unix),
    pipeline('cat', 'cat f > /dev/null', `cat ${q(abs)} > /dev/null`),
    pipeline('cat-cat', 'cat f | cat', intoCat(`cat ${q(abs)}`)),
    pipeline('cli', 'cli read f | cat', intoCat(cli), `${cli} | cmp - ${q(abs)}`),
    { key: 'py-tcp', label: 'python client tcp', unit: 'GB/s', run: () => pythonBig(s.product.tcp, big, t, 'python client tcp') },
    {
      key: 'fs-stream',
      label: 'fs.createReadStream',
      unit: 'GB/s',
      run: async () => {
        const cpu = cpuMeter()
        const t0 = now()
        const read = await withTimeout(consume(createReadStream(abs)), t, 'fs.createReadStream')
        const ms = now() - t0
        const used = cpu()
        checkRead('fs.createReadStream', read, big)
        return { value: gbps(read.bytes, ms), cpu: cpuPer(used, read.bytes / 1e9) } satisfies Sample
      },
    },
  ]
}

// ─── 2. Many small files ─────────────────────────────────────────────────────

function checkFile(what: string, data: Buffer, want: FileInfo): void {
  if (data.length !== want.size || xorPages(data) !== want.xor) {
    throw new BenchError(`${what}: ${want.path}: got ${data.length} bytes (xor ${xorPages(data)}), expected ${want.size} (xor ${want.xor})`)
  }
}

/** The files a round reads: a slice of the data set, the same for every contender of the round. */
export interface Slice {
  /** Index of files[0] in the data set (and the bare server's list). */
  first: number
  files: readonly FileInfo[]
}

export function smallContenders(s: Setup, slice: () => Slice): Contender[] {
  const t = s.timeoutMs

  // The socket path (a remote client's), unless `sharedMemory`: the same host's short-circuit reads.
  const library = (key: string, label: string, url: string, inFlight: number, sharedMemory = false): Contender => ({
    key,
    label,
    unit: 'files/s',
    run: async () => {
      const { files } = slice()
      const n = files.length
      const paths = files.map((f) => f.path)
      const client = await connect(url, { shortCircuit: sharedMemory })
      try {
        const cpu = cpuMeter(s.product.child.pid)
        const t0 = now()
        const got = await withTimeout(
          (async () => {
            let i = 0
            for await (const { path, data } of client.readMany(paths, { inFlight })) {
              const want = files[i++]!
              if (path !== want.path) throw new BenchError(`${label}: got ${path} in place of ${want.path}`)
              checkFile(label, data, want)
            }
            return i
          })(),
          t,
          label,
        )
        const ms = now() - t0
        const used = cpu()
        if (got !== n) throw new BenchError(`${label}: got ${got} files, expected ${n}`)
        return { value: (n / ms) * 1000, cpu: cpuPer(used, n / 1000) } satisfies Sample
      } finally {
        await client.close()
      }
    },
  })
  const bare = (key: string, label: string, addr: BareAddress, conns: number): Contender => ({
    key,
    label,
    unit: 'files/s',
    run: async () => {
      const { first, files } = slice()
      const cpu = cpuMeter(s.bare.child.pid)
      const { ms, bytes } = await withTimeout(bareMany(addr, files, first, conns), t, label)
      const used = cpu()
      const want = files.reduce((sum, f) => sum + f.size, 0)
      if (bytes !== want) throw new BenchError(`${label}: read ${bytes} bytes, expected ${want}`)
      return { value: (files.length / ms) * 1000, cpu: cpuPer(used, files.length / 1000) } satisfies Sample
    },
  })
  const fsLoop = (key: string, label: string, workers: number): Contender => ({
    key,
    label,
    unit: 'files/s',
    run: async () => {
      const { files } = slice()
      const n = files.length
      const abs = files.map((f) => join(s.ds.root, f.path))
      let next = 0
      const cpu = cpuMeter()
      const t0 = now()
      await withTimeout(
        Promise.all(
          Array.from({ length: workers }, async () => {
            while (next < n) {
              const i = next++
              checkFile(label, await readFile(abs[i]!), files[i]!)
            }
          }),
        ),
        t,
        label,
      )
      const ms = now() - t0
      return { value: (n / ms) * 1000, cpu: cpuPer(cpu(), n / 1000) } satisfies Sample
    },
  })
  return [
    library('lib-tcp-1', 'library tcp inFlight 1', s.product.tcp, 1),
    library('lib-tcp-8', 'library tcp inFlight 8', s.product.tcp, 8),
    library('lib-unix-1', 'library unix inFlight 1', s.product.unix, 1),
    library('lib-unix-8', 'library unix inFlight 8', s.product.unix, 8),
    library('lib-shm-8', 'library unix inFlight 8, shared memory', s.product.unix, 8, true),
    { key: 'py-tcp-8', label: 'python client tcp inFlight 8', unit: 'files/s', run: () => pythonMany(s.product.tcp, slice().files, 8, t, 'python client tcp inFlight 8') },
    bare('bare-tcp-8', 'bare pair tcp 8 conns', s.bare.tcp, 8),
    bare('bare-unix-8', 'bare pair unix 8 conns', s.bare.unix, 8),
    fsLoop('fs-seq', 'fs.readFile sequential', 1),
    fsLoop('fs-8', 'fs.readFile 8 concurrent', 8),
  ]
}

// ─── 3. Time to first byte ───────────────────────────────────────────────────

/** What timedInShell's bash prints on stderr: clock readings ($EPOCHREALTIME, seconds with microseconds). */
const CLOCK = /^(start|first-byte|end) (\d+)\.(\d{6})\n/gm

/**
 * Run `cmd` in bash, timed by that shell (as from a user's shell), not from
 * here: this process holds GBs by now, and forking it cost each start-up
 * ~40 ms more and widened the gap between a two-process pipeline and
 * `node -e 0`. bash reads its clock without starting a process
 * ($EPOCHREALTIME). `ms` runs until `cmd` ended; `firstByteMs` until `cmd`
 * printed `first-byte $EPOCHREALTIME` on stderr, if it did.
 */
async function timedInShell(name: string, cmd: string, timeoutMs: number): Promise<{ ms: number; firstByteMs?: number; stdout: Buffer }> {
  const r = await shell(name, `LC_ALL=C; echo "start $EPOCHREALTIME" >&2; ${cmd}; echo "end $EPOCHREALTIME" >&2`, timeoutMs, true, 'bash')
  const clock = new Map([...r.stderr.matchAll(CLOCK)].map((m) => [m[1]!, Number(m[2]) * 1000 + Number(m[3]) / 1000]))
  checkShell(name, { ...r, stderr: r.stderr.replace(CLOCK, '') })
  const start = clock.get('start')
  const end = clock.get('end')
  const first = clock.get('first-byte')
  if (start === undefined || end === undefined) throw new BenchError(`${name}: no time reported`)
  return { ms: end - start, ...(first === undefined ? {} : { firstByteMs: first - start }), stdout: r.stdout }
}

/**
 * The CLI against the loaded product server (every file cached, the target's
 * figure), against `idle`: a product server holding only the file read (to
 * tell the client's start-up from the server's answer), and `node -e 0`.
 * For the CLI, the first byte counts when head has it (the time to first
 * byte), and the run's end is kept too: the client exits after that.
 */
export function ttfbContenders(s: Setup, idle: ProductServer): Contender[] {
  const small = s.ds.small[0]!
  const first = readFileSync(join(s.ds.root, small.path)).subarray(0, 1)
  /** `cmd | head -c1`: bash reads the clock as soon as head has its byte (and exits); the pipeline ends when `cmd` has exited too. */
  const intoHead = (key: string, label: string, cmd: string, want: Buffer): Contender => ({
    key,
    label,
    unit: 'ms',
    run: async () => {
      const r = await timedInShell(label, `${cmd} | { head -c1; echo "first-byte $EPOCHREALTIME" >&2; }`, s.timeoutMs)
      if (!r.stdout.equals(want)) throw new BenchError(`${label}: got ${r.stdout.length} bytes (${r.stdout.toString('hex')}), expected 1 (${want.toString('hex')})`)
      if (r.firstByteMs === undefined) throw new BenchError(`${label}: no first-byte time reported`)
      return { value: r.firstByteMs, also: { end: r.ms } } satisfies Sample
    },
  })
  const cli = (server: ProductServer) => `${q(CLIENT_BIN)} --server ${q(server.tcp)} read ${q(small.path)}`
  return [
    intoHead('cli-ttfb', 'cli read small | head -c1', cli(s.product), first),
    {
      key: 'node-e0',
      label: 'node -e 0',
      unit: 'ms',
      run: async () => (await timedInShell('node -e 0', 'node -e 0', s.timeoutMs)).ms,
    },
    intoHead('cli-ttfb-idle', 'same, server holding 1 file', cli(idle), first),
    // The same pipeline with a Node that only writes a byte: what the pipeline and Node's start cost without any client.
    intoHead('node-byte', 'node writes 1 byte | head -c1', `node -e 'require("fs").writeSync(1, "x")'`, Buffer.from('x')),
  ]
}
