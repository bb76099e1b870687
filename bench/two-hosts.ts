/**
 * Two hosts on one machine: the real server bin in a network namespace of
 * its own, read from the root namespace across a veth pair shaped to
 * 1 Gbit/s each way (spec/helpers/netns.ts).
 *
 *   line rate   a hot file read with readChunks, against a bare TCP sender
 *               in the same namespace streaming as many bytes over the same
 *               link: the link's own ceiling, measured in the same run;
 *   1 ms RTT    the link delayed 0.5 ms each way: the seed's stop-and-wait
 *               design (one 1 KiB page per round trip), emulated with the
 *               product's client reading 1 KiB ranges one after another,
 *               against the product's streaming read of the hot file.
 *
 * Each read checks its byte count (and the page xor, or the bytes
 * themselves); the namespaces, links and processes are gone at the end,
 * whatever happened.
 */
import { once } from 'node:events'
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { type Client, connect } from '../lib/index.js'
import { type Link, makeLink } from '../spec/helpers/netns.js'
import { alternate, type Contender, type Measured, type Sample } from './measure.js'
import { shell, startServer, stop } from './procs.js'
import { SERVER_BIN, serverEnv, serverNodeFlags } from './servers.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { writeRandomFile } from './data.js'
import { BenchError, checkRead, cpuMeter, elapsed, fmtBytes, KiB, log, median, MiB, now, Toucher, withTimeout } from './util.js'

export interface TwoHostsResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

const RATE = '1gbit'
/** 1 Gbit/s in GB/s (10^9 bytes/s), before any header. */
const NOMINAL_GBPS = 0.125
/** One-way delay of each end for the 1 ms round trip. */
const DELAY_MS = 0.5
/** The seed's page, and how long its emulation runs: whichever bound comes first. */
const SEED_PAGE = 1 * KiB
const SEED_REQUESTS = 2000
const SEED_MS = 3000
/** What the warm-ups read: enough for the JIT and the checks, little of the budget. */
const WARM_BYTES = 64 * MiB
/** Bytes a second the shaped link carries at best (headers take ~4%), for the time budget only. */
const LINK_BPS = 0.12e9

/**
 * The bare sender, run in the server's namespace: listens on HOST port 0,
 * prints the port; each connection sends a decimal byte count and a newline,
 * and gets that many bytes from one preallocated buffer, then the end. Exits
 * when its stdin closes, so it cannot outlive the bench.
 */
const SENDER = `
const net = require('node:net')
const buf = Buffer.alloc(4 << 20, 0x5a)
const server = net.createServer((c) => {
  c.setNoDelay(true)
  let head = ''
  const onData = (d) => {
    head += d
    const nl = head.indexOf('\\n')
    if (nl < 0) return
    c.off('data', onData)
    let left = Number(head.slice(0, nl))
    const go = () => {
      while (left > 0) {
        const n = Math.min(left, buf.length)
        left -= n
        if (!c.write(n === buf.length ? buf : buf.subarray(0, n))) return void c.once('drain', go)
      }
      c.end()
    }
    go()
  }
  c.on('data', onData)
  c.on('error', () => {})
})
server.listen(0, process.argv[1], () => console.log(server.address().port))
process.stdin.on('close', () => process.exit(0))
process.stdin.resume()
`

/** Bytes per ms → GB/s. */
const gbps = (bytes: number, ms: number) => bytes / ms / 1e6

interface Hot {
  dir: string
  path: string
  abs: string
  size: number
  xor: number
}

/** `bytes` random bytes in a file of its own under `tmp` (on disk), flushed so writeback does not run during the reads. */
async function writeHot(tmp: string, bytes: number, timeoutMs: number): Promise<Hot> {
  const dir = mkdtempSync(join(tmp, 'two-hosts-'))
  const abs = join(dir, 'hot.bin')
  let xor: number
  try {
    xor = (await writeRandomFile(dir, 'hot.bin', bytes)).xor
    await shell('two hosts: sync', 'sync', timeoutMs)
  } catch (err) {
    rmSync(dir, { recursive: true, force: true })
    throw err
  }
  return { dir, path: 'hot.bin', abs, size: bytes, xor }
}

interface Running {
  link: Link
  server: Awaited<ReturnType<typeof startServer>>
  url: string
  shmParent: string | null
}

/** The server bin inside the link's namespace, as its shebang runs it, with the hot file warmed into its cache. */
async function startWarm(link: Link, hot: Hot, name: string, timeoutMs: number): Promise<Running> {
  // Its own store under /dev/shm, removed afterwards even if the server has to be killed.
  const shmParent = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/cacheserv-two-hosts-') : null
  const store = shmParent ? ['--shm-dir', join(shmParent, 'store')] : []
  const argv = link.exec([process.execPath, ...serverNodeFlags(), SERVER_BIN, '--root', hot.dir, '--host', link.serverIp, '--port', '0', '--insecure-no-auth', '--settle', '0', '--cache-size', String(hot.size + 256 * MiB), ...store])
  let server: Running['server']
  try {
    server = await startServer(name, argv[0]!, argv.slice(1), timeoutMs, serverEnv())
  } catch (err) {
    if (shmParent) rmSync(shmParent, { recursive: true, force: true })
    throw err
  }
  const running = { link, server, url: '', shmParent }
  try {
    const m = /listening on (tcp:\/\/\S+)/.exec(server.line)
    if (!m) throw new BenchError(`${name} printed no address: ${server.line}`)
    running.url = m[1]!
    const control = await connect(running.url)
    try {
      const t = elapsed()
      const warmed = await withTimeout(control.warm(hot.path), timeoutMs, `${name}: warm`)
      if (warmed.bytes !== hot.size) throw new BenchError(`${name}: warm cached ${warmed.bytes} bytes of ${hot.size}`)
      if (control.hello.shm) throw new BenchError(`${name}: HELLO offers shared memory across the link`)
      log(`${name}: ${running.url}, ${fmtBytes(hot.size)} warm in ${(elapsed() - t).toFixed(1)} s`)
    } finally {
      await control.close()
    }
    return running
  } catch (err) {
    await stopRunning(running)
    throw err
  }
}

async function stopRunning(r: Running): Promise<void> {
  await stop(r.server.child)
  if (r.shmParent) rmSync(r.shmParent, { recursive: true, force: true })
}

/** readChunks of `length` bytes of the hot file over a fresh connection, checked; GB/s, and CPU per GB. */
function streamRead(label: string, r: Running, hot: Hot, timeoutMs: number, length = hot.size): () => Promise<Sample> {
  return async () => {
    const client = await connect(r.url)
    try {
      const cpu = cpuMeter(r.server.child.pid)
      const read = new Toucher()
      const t0 = now()
      const info = await withTimeout(
        client.readChunks(hot.path, (c) => read.touch(c), length < hot.size ? { length } : {}),
        timeoutMs,
        label,
      )
      const ms = now() - t0
      const used = cpu()
      if (length < hot.size) {
        if (read.bytes !== length || info.length !== length) throw new BenchError(`${label}: read ${read.bytes} bytes, expected ${length}`)
      } else checkRead(label, read, hot)
      return { value: gbps(read.bytes, ms), cpu: { client: used.client / (read.bytes / 1e9), server: used.server / (read.bytes / 1e9) } }
    } finally {
      await client.close()
    }
  }
}

/** `bytes` from the bare sender over a fresh connection; from the request to the last byte. */
async function bareRead(link: Link, port: number, bytes: number): Promise<{ ms: number; bytes: number }> {
  const socket = net.connect({ host: link.serverIp, port, noDelay: true })
  try {
    await once(socket, 'connect')
    return await new Promise((resolve, reject) => {
      let got = 0
      socket.on('data', (c: Buffer) => void (got += c.length))
      socket.once('error', reject)
      socket.once('end', () => (got === bytes ? resolve({ ms: now() - t0, bytes: got }) : reject(new BenchError(`bare sender: ${got} bytes, expected ${bytes}`))))
      const t0 = now()
      socket.write(`${bytes}\n`)
    })
  } finally {
    socket.destroy()
  }
}

export async function twoHosts(tmp: string, bytes: number, rounds: [number, number], timeoutMs: number): Promise<TwoHostsResult> {
  if (!Number.isSafeInteger(bytes) || bytes < SEED_PAGE) throw new BenchError(`two hosts: ${bytes} bytes is no file size to read`)
  const lineRate = `hot ${fmtBytes(bytes)} across a 1 Gbit/s link (two network namespaces)`
  const rtt = `${fmtBytes(bytes)} across a 1 Gbit/s link with a 1 ms round trip`
  const lineSeconds = bytes / LINK_BPS
  const link = await makeLink({ rate: RATE })
  if ('skipped' in link) return { rows: [], targets: [], notes: [`no two-host rows: ${link.skipped}`] }
  let hot: Hot | null = null
  const notes: string[] = [`two hosts: nominal 1 Gbit/s = ${NOMINAL_GBPS} GB/s; TCP over a 1500-byte MTU carries ~96% of it (tbf counts every header)`]
  const rows: Row[] = []
  const targets: Target[] = []
  try {
    const h = await writeHot(tmp, bytes, timeoutMs)
    hot = h
    log(`${lineRate}: server namespace ${link.serverNs} (${link.serverIp}), client ${link.clientIp}, ${RATE} each way`)

    // a. Line rate: the bare sender and the product, on the same link, alternated.
    const senderArgv = link.exec([process.execPath, '-e', SENDER, link.serverIp])
    const sender = await startServer('two hosts: bare sender', senderArgv[0]!, senderArgv.slice(1), timeoutMs)
    const port = Number(sender.line.trim())
    let product: Running | null = null
    try {
      if (!Number.isInteger(port) || port <= 0) throw new BenchError(`bare sender printed no port: ${sender.line}`)
      product = await startWarm(link, h, 'two hosts: server', timeoutMs)
      const bare = (n: number) => async (): Promise<Sample> => {
        const cpu = cpuMeter(sender.child.pid)
        const r = await withTimeout(bareRead(link, port, n), timeoutMs, 'bare sender')
        const used = cpu()
        return { value: gbps(r.bytes, r.ms), cpu: { client: used.client / (r.bytes / 1e9), server: used.server / (r.bytes / 1e9) } }
      }
      const warmBytes = Math.min(WARM_BYTES, bytes)
      const contenders: Contender[] = [
        { key: 'bare', label: 'bare TCP sender (the link ceiling)', unit: 'GB/s', run: bare(bytes), warm: bare(warmBytes) },
        { key: 'product', label: 'library tcp readChunks, hot', unit: 'GB/s', run: streamRead('two hosts: readChunks', product, h, timeoutMs), warm: streamRead('two hosts: readChunks (warm-up)', product, h, timeoutMs, warmBytes) },
      ]
      // Two rounds at least; a third only if it fits in about 5 line times from now.
      const measured = await alternate(lineRate, contenders, { rounds: rounds[1], minRounds: rounds[0], deadline: elapsed() + 5 * lineSeconds + 2 })
      const g = (k: string): Measured => measured.get(k)!
      rows.push(
        row(lineRate, g('product'), g('bare'), `${g('product').median.toFixed(4)} vs ${g('bare').median.toFixed(4)} GB/s; server in the other namespace, every page checked`),
        row(lineRate, g('bare'), undefined, `${((g('bare').median / NOMINAL_GBPS) * 100).toFixed(1)}% of the nominal ${NOMINAL_GBPS} GB/s`),
      )
      targets.push(ratioTarget('hot file across a 1 Gbit/s link ≥ 0.9× line rate (bare TCP on the same link)', g('product'), g('bare'), 0.9))
    } finally {
      if (product) await stopRunning(product)
      await stop(sender.child)
      await link.remove()
    }

    // b. A 1 ms round trip: the seed's stop-and-wait design against the product's stream.
    const slow = await makeLink({ rate: RATE, delayMs: DELAY_MS })
    if ('skipped' in slow) {
      notes.push(`no 1 ms round-trip rows: ${slow.skipped}`)
      return { rows, targets, notes }
    }
    if (slow.delayBy === 'relay') notes.push('two hosts: this kernel has no netem: the 1 ms round trip is made by a relay in a third namespace (see spec/helpers/netns.ts), which adds its own ~0.1 ms')
    try {
      const server = await startWarm(slow, h, 'two hosts: server (1 ms RTT)', timeoutMs)
      try {
        const roundTrip = await connectMs(server.url, 21)
        log(`${rtt}: TCP connect (one round trip) takes ${roundTrip.toFixed(2)} ms (median of 21)`)
        let perRequest = NaN
        const seed = (requests: number, ms: number) => async (): Promise<number> => {
          const r = await withTimeout(stopAndWait(server.url, h, requests, ms), timeoutMs, 'stop-and-wait')
          perRequest = r.ms / r.requests
          return gbps(r.requests * SEED_PAGE, r.ms)
        }
        const contenders: Contender[] = [
          { key: 'seed', label: `stop-and-wait, one ${fmtBytes(SEED_PAGE)} page per round trip (the seed)`, unit: 'GB/s', run: seed(SEED_REQUESTS, SEED_MS), warm: seed(200, 500) },
          { key: 'stream', label: 'library tcp readChunks, hot', unit: 'GB/s', run: streamRead('two hosts: readChunks (1 ms RTT)', server, h, timeoutMs), warm: streamRead('two hosts: readChunks (1 ms RTT, warm-up)', server, h, timeoutMs, Math.min(WARM_BYTES, bytes)) },
        ]
        const measured = await alternate(rtt, contenders, { rounds: rounds[1], minRounds: rounds[0], deadline: elapsed() + 2 * (lineSeconds + SEED_MS / 1000) + 2 }, (v) => v.toPrecision(3))
        const g = (k: string): Measured => measured.get(k)!
        // What a stop-and-wait design could reach at best: one page per exactly 1 ms, no time spent on either host.
        const ceiling = SEED_PAGE / (2 * DELAY_MS) / 1e6
        rows.push(
          row(rtt, g('stream'), g('seed'), `${g('stream').median.toFixed(4)} GB/s, ${(g('stream').median / ceiling).toFixed(0)}× the seed's best case (1 KiB per 1.000 ms = ${ceiling.toPrecision(3)} GB/s)`),
          row(rtt, g('seed'), undefined, `${g('seed').median.toPrecision(3)} GB/s: 1 KiB readFile ranges awaited in turn, ${perRequest.toFixed(2)} ms each in the last round; TCP connect ${roundTrip.toFixed(2)} ms`),
        )
        targets.push(ratioTarget("≥ 100× the seed's one-page-per-round-trip design at a 1 ms round trip", g('stream'), g('seed'), 100))
      } finally {
        await stopRunning(server)
      }
    } finally {
      await slow.remove()
    }
    return { rows, targets, notes }
  } finally {
    await link.remove()
    if (hot) rmSync(hot.dir, { recursive: true, force: true })
  }
}

/** Median ms of `n` TCP connects to the server (SYN, SYN-ACK: one round trip), each closed at once. */
async function connectMs(url: string, n: number): Promise<number> {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(url)
  if (!m) throw new BenchError(`not a tcp:// address: ${url}`)
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const t0 = now()
    const socket = net.connect({ host: m[1]!, port: Number(m[2]) })
    try {
      await withTimeout(once(socket, 'connect'), 5000, 'connect')
      times.push(now() - t0)
    } finally {
      socket.destroy()
    }
  }
  return median(times)
}

/**
 * The seed's protocol with the product's client: one 1 KiB range, awaited,
 * then the next, through the file, until `requests` or `ms` run out. The
 * pages are compared with the file afterwards (untimed).
 */
async function stopAndWait(url: string, hot: Hot, requests: number, ms: number): Promise<{ requests: number; ms: number }> {
  const client: Client = await connect(url)
  const pages: Buffer[] = []
  const pagesInFile = Math.floor(hot.size / SEED_PAGE)
  let elapsedMs = 0
  try {
    const t0 = now()
    while (pages.length < requests && (elapsedMs = now() - t0) < ms) {
      pages.push(await client.readFile(hot.path, { offset: (pages.length % pagesInFile) * SEED_PAGE, length: SEED_PAGE }))
    }
    elapsedMs = now() - t0
  } finally {
    await client.close()
  }
  const fd = openSync(hot.abs, 'r')
  try {
    const want = Buffer.allocUnsafe(SEED_PAGE)
    pages.forEach((page, i) => {
      readSync(fd, want, 0, SEED_PAGE, (i % pagesInFile) * SEED_PAGE)
      if (!page.equals(want)) throw new BenchError(`stop-and-wait: page ${i} (${page.length} bytes) differs from the file`)
    })
  } finally {
    closeSync(fd)
  }
  return { requests: pages.length, ms: elapsedMs }
}
