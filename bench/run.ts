/**
 * `npm run bench [-- --quick] [-- --json PATH]`: measure cacheserv-pipe
 * against the bare Node ceiling, cat and fs on data of its own, and print a
 * table of figures, baselines, ratios and targets. A measurement, not a
 * test: it exits 0 when targets are missed, non-zero only when something
 * broke (a wrong byte count, a process that failed).
 */
import { fsspecPython, httpContenders, startNginx } from './http-gateway.js'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from '../lib/index.js'
import { mlEpochs } from './ml-epoch.js'
import { firstBatch } from './first-batch.js'
import { listing } from './listing.js'
import { sharedTierEpoch } from './shared-tier.js'
import { twoHosts } from './two-hosts.js'
import { ensureTree, missingParts, PART_FILES, PART_LIMIT, TREE } from './listing-tree.js'
import { pipeIntoPython } from './pipe-python.js'
import { hotContenders, type Setup, type Slice, smallContenders, ttfbContenders } from './contenders.js'
import { type Dataset, makeDataset } from './data.js'
import { latencyRoot } from './latency-root.js'
import { alternate, type Measured } from './measure.js'
import { killAllNow, markStopping, stop, stopAll } from './procs.js'
import { rssOf, serverEnv, serverNodeFlags, startBare, startBin, startProduct } from './servers.js'
import { formatTables, ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, elapsed, fmtBytes, GiB, log, MiB, signedMs, withTimeout, xorPages } from './util.js'

interface Options {
  quick: boolean
  json: string | null
}

const USAGE = `usage: npm run bench [-- --quick] [-- --json PATH]
  --quick       smaller data (256 MiB, 4,000 files; 3,000 for the DataLoader; a listing of 100,000), about two minutes
  --json PATH   also write the table as JSON to PATH`

function parseArgs(argv: string[]): Options {
  const o: Options = { quick: false, json: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === '--quick') o.quick = true
    else if (a === '--json' && argv[i + 1]) o.json = argv[++i]!
    else if (a.startsWith('--json=')) o.json = a.slice(7)
    else if (a === '--help' || a === '-h') {
      console.log(USAGE)
      process.exit(0)
    } else {
      console.error(`bench: unknown argument ${JSON.stringify(a)}\n${USAGE}`)
      process.exit(2)
    }
  }
  return o
}

interface Plan {
  bigBytes: number
  smallFiles: number
  /** Files each round of the small-file section reads (a different slice each round, the same for every contender). */
  slice: number
  /** Seconds the whole run should stay under: no new round starts past its section's share, once the minimum is done. */
  budget: number
  timeoutMs: number
  hotRounds: [min: number, max: number]
  smallRounds: [min: number, max: number]
  ttfbRounds: [min: number, max: number]
  /** Files of the DataLoader epochs, and their rounds. */
  mlFiles: number
  pipeBytes: number
  mlRounds: [min: number, max: number]
  /** Time to first batch: its rounds, and the seconds after which no new one starts. */
  batchRounds: [min: number, max: number]
  batchSeconds: number
  /** Files of the first epoch on a root with latency per read. */
  latencyFiles: number
  /** Parts of 100,000 files of the listing tree listed (see listing-tree.ts), its rounds and seconds as above. */
  listParts: number
  listRounds: [min: number, max: number]
  listSeconds: number
}

const FULL: Plan = { bigBytes: 1 * GiB, smallFiles: 20_000, slice: 2000, budget: 250, timeoutMs: 60_000, hotRounds: [3, 5], smallRounds: [3, 5], ttfbRounds: [11, 25], mlFiles: 15_000, mlRounds: [3, 4], pipeBytes: 512 * MiB, batchRounds: [3, 5], batchSeconds: 40, latencyFiles: 3000, listParts: 10, listRounds: [2, 3], listSeconds: 100 }
const QUICK: Plan = { bigBytes: 256 * MiB, smallFiles: 4_000, slice: 500, budget: 40, timeoutMs: 20_000, hotRounds: [2, 3], smallRounds: [2, 3], ttfbRounds: [7, 11], mlFiles: 3_000, mlRounds: [2, 2], pipeBytes: 128 * MiB, batchRounds: [3, 3], batchSeconds: 15, latencyFiles: 1000, listParts: 1, listRounds: [2, 3], listSeconds: 10 }
/** Files the small-file warm-ups read (the first ones of the data set; the rounds read the slices after them). */
const WARM_FILES = 200

let tmp: string | null = null

/** How the servers are run, as the bin's shebang runs the real one: its environment and node flags. */
function serverLaunch(): string {
  const env = Object.entries(serverEnv()).map(([k, v]) => `${k}=${v}`)
  return [...env, 'node', ...serverNodeFlags()].join(' ')
}

let guardAt = 0
let guardTimer: NodeJS.Timeout | undefined
/** A last bound on everything: past `seconds` since the start, something hangs; give up (non-zero) rather than run on. */
function guard(seconds: number): void {
  clearTimeout(guardTimer)
  guardAt = seconds
  guardTimer = setTimeout(() => {
    markStopping()
    const n = killAllNow()
    process.stderr.write(`bench: FAILED: still running after ${seconds.toFixed(0)} s; killed ${n} processes\n`)
    removeTmp()
    process.exit(1)
  }, Math.max(0, seconds - elapsed()) * 1000).unref()
}

function removeTmp(): void {
  if (tmp) rmSync(tmp, { recursive: true, force: true })
  tmp = null
}

function onSignal(sig: NodeJS.Signals): void {
  markStopping()
  const n = killAllNow()
  process.stderr.write(`\nbench: ${sig}: killed ${n} processes, removing ${tmp ?? 'nothing'}\n`)
  removeTmp()
  process.exit(sig === 'SIGINT' ? 130 : 143)
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2))
  const plan = opts.quick ? QUICK : FULL
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  // The DataLoader, crash-restart, first-batch, listing, shared-tier and two-host rows run after the budgeted sections, for ~10 minutes more.
  guard(plan.budget * 2.5 + 700)
  const load0 = loadavg()
  log(`cacheserv-pipe bench${opts.quick ? ' --quick (smaller data: figures are not those of a full run)' : ''}: ${fmtBytes(plan.bigBytes)} file, ${plan.smallFiles.toLocaleString('en-US')} files of ~110 KB; ${cpus().length} cores, load ${load0.map((l) => l.toFixed(2)).join(' ')}`)
  tmp = mkdtempSync(join(tmpdir(), 'cacheserv-bench-'))
  const ds = await makeDataset(tmp, { bigBytes: plan.bigBytes, smallFiles: plan.smallFiles })
  const total = ds.big.size + ds.smallBytes
  const cacheBytes = Math.ceil((total + 256 * MiB) / MiB) * MiB

  log(`servers: starting the product server (${serverLaunch()}, cache ${fmtBytes(cacheBytes)}), the bare server and the bin (for RSS)`)
  const [product, bare, bin] = await Promise.all([startProduct(ds, cacheBytes), startBare(ds), startBin(join(ds.root, 'small'), rssCacheBytes(ds))])
  if (bare.bytes !== total) throw new BenchError(`bare server holds ${bare.bytes} bytes, expected ${total}`)
  log(`servers: product on ${product.tcp} and ${product.unix}; bare on tcp port ${bare.tcp.kind === 'tcp' ? bare.tcp.port : '?'} and a unix socket, holding ${fmtBytes(bare.bytes)}`)

  // Warm the product server, and meanwhile (setup, not timed) the bin's RSS section, which stops the bin after.
  const control = await connect(product.tcp)
  const warming = (async () => {
    const t = elapsed()
    const warmed = await withTimeout(control.warm(''), plan.timeoutMs * 3, 'warm')
    if (warmed.bytes !== total || warmed.files !== ds.small.length + 1) {
      throw new BenchError(`warm cached ${warmed.files} files, ${warmed.bytes} bytes; expected ${ds.small.length + 1} files, ${total} bytes`)
    }
    log(`servers: product server warm in ${(elapsed() - t).toFixed(1)} s`)
  })()
  const [, mem] = await Promise.all([warming, measureRss(ds, plan, bin)])
  const stats0 = await control.stats()
  log(`servers: product cache: ${fmtBytes(stats0.cacheBytes)} in ${stats0.entries} blocks`)
  const setup: Setup = { ds, product, bare, timeoutMs: plan.timeoutMs }
  const B = plan.budget

  // 1. The big file, hot.
  const hotName = `hot ${fmtBytes(ds.big.size)} read`
  const hot = await alternate(hotName, hotContenders(setup), { rounds: plan.hotRounds[1], minRounds: plan.hotRounds[0], deadline: 0.5 * B })
  const stats1 = await control.stats()

  // 1b. The same file over HTTP: the gateway against nginx (sendfile), with curl and fsspec.
  const httpName = `${fmtBytes(ds.big.size)} over HTTP`
  const nginx = await startNginx(tmp, ds.root, log)
  const python = fsspecPython()
  const httpNotes: string[] = []
  if ('skipped' in nginx) httpNotes.push(`no nginx row: ${nginx.skipped}`)
  if (!python) httpNotes.push('no fsspec rows: no Python that imports fsspec and aiohttp (apt-get install python3-fsspec python3-aiohttp)')
  for (const n of httpNotes) log(`${httpName}: ${n}`)
  const httpTargets = [{ key: 'gateway', label: 'the gateway', url: product.http }, ...('url' in nginx ? [{ key: 'nginx', label: 'nginx sendfile', url: nginx.url }] : [])]
  const http = await alternate(httpName, httpContenders(ds, httpTargets, plan.timeoutMs, python), { rounds: plan.hotRounds[1], minRounds: plan.hotRounds[0], deadline: 0.62 * B })
  if ('child' in nginx) await stop(nginx.child)

  // 2. Many small files: each round a different slice of them, the same for every contender.
  const smallName = `${ds.small.length.toLocaleString('en-US')} × ~110 KB files`
  let slice: Slice = { first: 0, files: ds.small.slice(0, WARM_FILES) }
  const small = await alternate(
    smallName,
    smallContenders(setup, () => slice),
    {
      rounds: plan.smallRounds[1],
      minRounds: plan.smallRounds[0],
      deadline: 0.85 * B,
      onRound: (r) => {
        const first = r < 0 ? 0 : WARM_FILES + ((r * plan.slice) % (ds.small.length - WARM_FILES - plan.slice + 1))
        slice = { first, files: ds.small.slice(first, first + (r < 0 ? WARM_FILES : plan.slice)) }
        log(`${smallName}: ${r < 0 ? 'warm-ups read' : `round ${r + 1} reads`} files ${first} to ${first + slice.files.length - 1}`)
      },
    },
    (v) => v.toFixed(0),
  )
  const smallFilesRead = small.get('fs-seq')!.samples.length * plan.slice
  const stats2 = await control.stats()
  const misses = stats2.misses - stats0.misses
  if (misses > 0) log(`warning: the product server missed its cache ${misses} times during the timed reads (hot phase: ${stats1.misses - stats0.misses})`)

  // 3. Time to first byte.
  // Beside the loaded server, one holding only the file read (see ttfbContenders).
  const idle = await startProduct(ds, 64 * MiB, 'idle')
  const idleControl = await connect(idle.tcp)
  await idleControl.warm(ds.small[0]!.path)
  await idleControl.close()
  // Start-ups are short: let the machine settle after the small-file rounds (servers collecting garbage, page writeback).
  await new Promise((r) => setTimeout(r, 2000))
  const ttfb = await alternate('time to first byte', ttfbContenders(setup, idle), { rounds: plan.ttfbRounds[1], minRounds: plan.ttfbRounds[0], deadline: 0.93 * B }, (v) => v.toFixed(1))
  await control.close()
  await Promise.all([stop(product.child), stop(bare.child), stop(idle.child)])

  // 4. The ML workload: a DataLoader epoch through the server and from the page cache.
  const ml = await mlEpochs(tmp, plan.mlFiles, plan.mlRounds, plan.timeoutMs)
  for (const n of ml.notes) log(n)
  // 4b. A restarted training script's first batch, over the same files.
  const batch = ml.images ? await firstBatch(ml.images, plan.batchRounds, plan.batchSeconds, plan.timeoutMs) : { rows: [], targets: [], notes: ['no time-to-first-batch rows: no Python that imports torch'] }
  for (const n of batch.notes) log(n)
  // A first epoch of some of the same files on a root with latency per read, through a cold server and direct.
  const latency = ml.images ? await latencyRoot(tmp, ml.images, join(tmp, 'images.txt'), plan.latencyFiles, plan.mlRounds[0], plan.timeoutMs) : { rows: [], targets: [], notes: ['no latency-root rows: no Python that imports torch'] }
  for (const n of latency.notes) log(n)
  // 4c. A listing of 1,000,000 files (100,000 in --quick). Their tree is kept across runs; a run that has to make it has that much longer.
  const missing = missingParts(plan.listParts).length
  if (missing > 0) {
    guard(guardAt + missing * PART_LIMIT)
    log(`listing tree: making ${missing} parts of ${PART_FILES.toLocaleString('en-US')} files under ${TREE} (once: later runs reuse them)`)
    log(`listing tree: made in ${(await ensureTree(plan.listParts)).toFixed(1)} s`)
  }
  const list = await listing(plan.listParts, plan.listRounds, plan.listSeconds, plan.timeoutMs)
  for (const n of list.notes) log(n)
  // 4d. A second host's epoch over the same files, its server's blocks from a Redis Cluster another host's server filled.
  const tier = ml.images ? await sharedTierEpoch(ml.images, join(tmp, 'images.txt'), plan.mlRounds, plan.timeoutMs) : { rows: [], targets: [], notes: ['no shared-tier rows: no Python that imports torch'] }
  for (const n of tier.notes) log(n)
  // 4e. Two hosts: a hot file across a 1 Gbit/s link, and the seed's stop-and-wait design at a 1 ms round trip.
  const hosts = await twoHosts(tmp, plan.bigBytes, [2, 3], plan.timeoutMs)
  for (const n of hosts.notes) log(n)
  // 5. The CLI into a Python loop, against that loop reading slow storage.
  const pipe = await pipeIntoPython(tmp, plan.pipeBytes, plan.mlRounds, plan.timeoutMs)
  for (const n of pipe.notes) log(n)

  // The table.
  const g = (m: Map<string, Measured>, k: string) => m.get(k)!
  /** Ms a time-to-first-byte contender took beyond `node -e 0`. */
  const overNode = (k: string) => g(ttfb, k).median - g(ttfb, 'node-e0').median
  /** overNode, signed: "+26.7 ms", "−0.1 ms". */
  const over = (k: string) => signedMs(overNode(k))
  const rows: Row[] = [
    row(hotName, g(hot, 'lib-tcp'), g(hot, 'bare-tcp')),
    row(hotName, g(hot, 'lib-unix'), g(hot, 'bare-unix')),
    row(hotName, g(hot, 'chunks-tcp'), g(hot, 'bare-tcp'), 'each verified piece to a callback, no copy'),
    row(hotName, g(hot, 'chunks-unix'), g(hot, 'bare-unix'), 'each verified piece to a callback, no copy'),
    row(hotName, g(hot, 'bare-tcp'), g(hot, 'cat-cat')),
    row(hotName, g(hot, 'bare-unix'), g(hot, 'cat-cat')),
    row(hotName, g(hot, 'cli'), g(hot, 'cat-cat'), 'wall time, incl. node start'),
    row(hotName, g(hot, 'cat-cat'), g(hot, 'cat')),
    row(hotName, g(hot, 'cat')),
    row(hotName, g(hot, 'fs-stream'), g(hot, 'cat')),
    row(hotName, g(hot, 'py-tcp'), g(hot, 'lib-tcp'), 'stdlib client, read_into an 8 MiB buffer'),
    ...(http.has('curl-nginx') ? [row(httpName, g(http, 'curl-gateway'), g(http, 'curl-nginx'), 'curl to /dev/null; bytes compared with the file once')] : [row(httpName, g(http, 'curl-gateway'))]),
    ...(http.has('curl-nginx') ? [row(httpName, g(http, 'curl-nginx'))] : []),
    ...(http.has('fsspec-gateway') ? [row(httpName, g(http, 'fsspec-gateway'), http.has('fsspec-nginx') ? g(http, 'fsspec-nginx') : undefined, '40 random 5 MiB ranges, each checked')] : []),
    ...(http.has('fsspec-nginx') ? [row(httpName, g(http, 'fsspec-nginx'))] : []),
    row(smallName, g(small, 'lib-tcp-8'), g(small, 'bare-tcp-8')),
    row(smallName, g(small, 'lib-unix-8'), g(small, 'bare-unix-8')),
    row(smallName, g(small, 'lib-shm-8'), g(small, 'lib-unix-8'), 'readMany on the same host: locate, then the blocks from shared memory'),
    row(smallName, g(small, 'lib-tcp-1'), g(small, 'bare-tcp-8')),
    row(smallName, g(small, 'py-tcp-8'), g(small, 'lib-tcp-8'), 'stdlib client, read_many'),
    row(smallName, g(small, 'lib-unix-1'), g(small, 'bare-unix-8')),
    row(smallName, g(small, 'bare-tcp-8'), g(small, 'fs-8')),
    row(smallName, g(small, 'bare-unix-8'), g(small, 'fs-8')),
    row(smallName, g(small, 'fs-8'), g(small, 'fs-seq')),
    row(smallName, g(small, 'fs-seq')),
    row('time to first byte', g(ttfb, 'cli-ttfb'), g(ttfb, 'node-e0'), `${over('cli-ttfb')}: head has the byte`),
    row('time to first byte', g(ttfb, 'cli-ttfb/end'), g(ttfb, 'node-e0'), `${over('cli-ttfb/end')}: the client has exited too`),
    row('time to first byte', g(ttfb, 'cli-ttfb-idle'), g(ttfb, 'node-e0'), `${over('cli-ttfb-idle')}; the server caches 1 file, not ${stats0.entries.toLocaleString('en-US')} blocks`),
    row('time to first byte', g(ttfb, 'cli-ttfb-idle/end'), g(ttfb, 'node-e0'), `${over('cli-ttfb-idle/end')}`),
    row('time to first byte', g(ttfb, 'node-byte'), g(ttfb, 'node-e0'), `${over('node-byte')}: no client, Node and the pipeline`),
    row('time to first byte', g(ttfb, 'node-byte/end'), g(ttfb, 'node-e0'), `${over('node-byte/end')}`),
    row('time to first byte', g(ttfb, 'node-e0')),
    ...mem.rows,
    ...ml.rows,
    ...batch.rows,
    ...latency.rows,
    ...list.rows,
    ...tier.rows,
    ...hosts.rows,
    ...pipe.rows,
  ]
  // Node's start-up, measured two ways: `node -e 0` (as the target names it) and a Node writing one byte into the same
  // pipeline, timed at the same point as the CLI (head has the byte). The target holds against the quicker of the two.
  const nodeStart = Math.min(g(ttfb, 'node-e0').median, g(ttfb, 'node-byte').median)
  const ttfbDiff = g(ttfb, 'cli-ttfb').median - nodeStart
  const targets: Target[] = [
    ratioTarget('hot read, library read() stream tcp ≥ bare pair tcp', g(hot, 'lib-tcp'), g(hot, 'bare-tcp'), 1.0),
    ratioTarget('hot read, library read() stream unix ≥ bare pair unix', g(hot, 'lib-unix'), g(hot, 'bare-unix'), 1.0),
    ratioTarget('hot read, library readChunks tcp ≥ bare pair tcp', g(hot, 'chunks-tcp'), g(hot, 'bare-tcp'), 1.0),
    ratioTarget('hot read, library readChunks unix ≥ bare pair unix', g(hot, 'chunks-unix'), g(hot, 'bare-unix'), 1.0),
    ratioTarget('cli read f | cat ≥ 0.5 × cat f | cat', g(hot, 'cli'), g(hot, 'cat-cat'), 0.5),
    ratioTarget('small files, library 8 in flight ≥ bare pair 8 conns (tcp)', g(small, 'lib-tcp-8'), g(small, 'bare-tcp-8'), 1.0),
    ...(http.has('curl-nginx') ? [ratioTarget('hot read over HTTP, curl via the gateway ≥ 0.8 × nginx sendfile', g(http, 'curl-gateway'), g(http, 'curl-nginx'), 0.8)] : []),
    ratioTarget('hot read, python client ≥ 0.5 × library read() (tcp)', g(hot, 'py-tcp'), g(hot, 'lib-tcp'), 0.5),
    ratioTarget('small files, python client 8 in flight ≥ 0.5 × library (tcp)', g(small, 'py-tcp-8'), g(small, 'lib-tcp-8'), 0.5),
    {
      name: 'cli time to first byte ≤ node start-up + 30 ms',
      measured: `${g(ttfb, 'cli-ttfb').median.toFixed(1)} ms vs ${nodeStart.toFixed(1)} ms (${signedMs(ttfbDiff)}; node -e 0 ${g(ttfb, 'node-e0').median.toFixed(1)}, node writing a byte ${g(ttfb, 'node-byte').median.toFixed(1)}; exited ${over('cli-ttfb/end')} over node -e 0)`,
      required: '≤ +30 ms',
      pass: ttfbDiff <= 30,
      margin: ttfbDiff <= 30 ? `${(30 - ttfbDiff).toFixed(1)} ms to spare` : `misses by ${(ttfbDiff - 30).toFixed(1)} ms`,
      spread: Math.max(...['cli-ttfb', 'node-e0', 'node-byte'].map((k) => g(ttfb, k).spread)),
    },
    mem.target,
    ...ml.targets,
    ...batch.targets,
    ...latency.targets,
    ...list.targets,
    ...tier.targets,
    ...hosts.targets,
    ...pipe.targets,
  ]

  const wall = elapsed()
  const load1 = loadavg()
  const header = [
    `cacheserv-pipe bench${opts.quick ? ' --quick (QUICK MODE: smaller data, fewer repeats; not the full run)' : ''}`,
    `data: ${fmtBytes(ds.big.size)} random file; ${ds.small.length.toLocaleString('en-US')} files of 100–120 KB (${fmtBytes(ds.smallBytes)}); all hot (page cache, server caches)`,
    `small files: all ${ds.small.length.toLocaleString('en-US')} cached; each round reads ${plan.slice.toLocaleString('en-US')} of them (a new slice each round, the same for every contender; ${smallFilesRead.toLocaleString('en-US')} in all)`,
    `listing: ${(plan.listParts * PART_FILES).toLocaleString('en-US')} files of 0–64 bytes under ${TREE}, made once and kept across runs`,
    `machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, node ${process.version}, load ${load0.map((l) => l.toFixed(2)).join(' ')} → ${load1.map((l) => l.toFixed(2)).join(' ')} (shared: figures are medians of alternated repeats; compare ratios, not absolutes)`,
    `GB/s = 10^9 bytes/s; spread = (max − min) / median of the repeats; servers run as the bin's shebang does: ${serverLaunch()}`,
    '',
  ].join('\n')
  const footer = [
    '',
    misses > 0 ? `WARNING: the product server missed its cache ${misses} times during the timed reads` : 'product server: 0 cache misses during the timed reads (every read was hot)',
    'cpu: median CPU time per GB or per 1,000 files, of this process (the client side) + the server process; fs rows have no server',
    `wall time ${wall.toFixed(1)} s (this process, without the build)`,
  ].join('\n')
  process.stdout.write(header + formatTables(rows, targets) + '\n' + footer + '\n')
  if (opts.json) {
    writeFileSync(
      opts.json,
      JSON.stringify(
        {
          quick: opts.quick,
          date: new Date().toISOString(),
          node: process.version,
          cpus: cpus().length,
          loadavg: { start: load0, end: load1 },
          wallSeconds: wall,
          data: { bigBytes: ds.big.size, smallFiles: ds.small.length, smallBytes: ds.smallBytes },
          serverCacheMisses: misses,
          rows,
          targets,
          samples: Object.fromEntries([...hot.values(), ...small.values(), ...ttfb.values()].map((m) => [m.key, m.samples])),
        },
        null,
        2,
      ) + '\n',
    )
    log(`wrote ${opts.json}`)
  }
}

function rssCacheBytes(ds: Dataset): number {
  return Math.ceil((ds.smallBytes + 256 * MiB) / (256 * MiB)) * 256 * MiB
}

/** RSS of the real bin (root: the small files) after warming all of them, then after serving a slice; stops the bin. */
async function measureRss(ds: Dataset, plan: Plan, bin: { child: ChildProcess; url: string }): Promise<{ rows: Row[]; target: Target }> {
  const section = 'server RSS (bin)'
  const pid = bin.child.pid!
  log(`${section}: cacheserv-pipe pid ${pid} on ${bin.url}, cache ${fmtBytes(rssCacheBytes(ds))}, RSS at start ${fmtBytes(rssOf(pid))}`)
  const client = await connect(bin.url)
  try {
    const w = await withTimeout(client.warm(), plan.timeoutMs * 2, 'warm (bin)')
    if (w.files !== ds.small.length || w.bytes !== ds.smallBytes) throw new BenchError(`bin warm cached ${w.files} files, ${w.bytes} bytes; expected ${ds.small.length}, ${ds.smallBytes}`)
    const st = await client.stats()
    const rss = rssOf(pid)
    const bound = 1.05 * st.cacheBytes + 80 * MiB
    log(`${section}: after warm: RSS ${fmtBytes(rss)} for ${fmtBytes(st.cacheBytes)} in ${st.entries} entries (bound ${fmtBytes(bound)})`)
    // Then reads of a slice (8 in flight), to see what serving adds.
    const served = ds.small.slice(0, plan.slice)
    let i = 0
    for await (const { data } of client.readMany(
      served.map((f) => f.path.replace(/^small\//, '')),
      { inFlight: 8 },
    )) {
      const want = served[i++]!
      if (data.length !== want.size || xorPages(data) !== want.xor) throw new BenchError(`bin read ${want.path}: ${data.length} bytes, expected ${want.size}`)
    }
    const rssServed = rssOf(pid)
    log(`${section}: after serving ${served.length} files: RSS ${fmtBytes(rssServed)}`)
    const boundRow = { label: '1.05 × cached + 80 MiB', value: bound / MiB }
    const rows: Row[] = [
      { section, label: 'cached bytes', value: st.cacheBytes / MiB, unit: 'MiB', n: 1, spread: 0, note: `${st.entries.toLocaleString('en-US')} entries` },
      { section, label: 'RSS after warm', value: rss / MiB, unit: 'MiB', n: 1, spread: 0, baseline: boundRow, ratio: rss / bound },
      { section, label: `RSS after serving ${served.length.toLocaleString('en-US')} files`, value: rssServed / MiB, unit: 'MiB', n: 1, spread: 0, baseline: boundRow, ratio: rssServed / bound },
    ]
    const pass = rss <= bound
    const target: Target = {
      name: 'server RSS ≤ 1.05 × cached + 80 MiB',
      measured: `${(rss / bound).toFixed(2)}× (${(rss / MiB).toFixed(0)} MiB for ${(st.cacheBytes / MiB).toFixed(0)} MiB in ${st.entries} entries)`,
      required: `≤ 1.00× (${(bound / MiB).toFixed(0)} MiB)`,
      pass,
      margin: pass ? `${((bound - rss) / MiB).toFixed(0)} MiB to spare` : `misses by ${((rss - bound) / MiB).toFixed(0)} MiB`,
      // One reading, not repeats.
      spread: 0,
    }
    return { rows, target }
  } finally {
    await client.close()
    await stop(bin.child)
  }
}

main()
  .catch((err: Error) => {
    console.error(`bench: FAILED: ${err instanceof BenchError ? err.message : (err.stack ?? err.message)}`)
    process.exitCode = 1
  })
  .finally(async () => {
    markStopping()
    const left = await stopAll()
    if (left.length) log(`stopped ${left.join(', ')}`)
    const t = elapsed()
    removeTmp()
    log(`removed the temp dir in ${(elapsed() - t).toFixed(1)} s`)
    log(`done in ${elapsed().toFixed(1)} s${process.exitCode ? ' (with errors)' : ''}`)
  })
