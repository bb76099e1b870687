/**
 * How long a bare Node server takes to answer a new connection after being
 * idle, holding nothing and holding GBs: the part of the time to first byte
 * that is the machine's, not ours. The server is the bare minimum (accept,
 * write 5 bytes); the bytes it holds are ~110 KB Buffers filled in the libuv
 * thread pool (crypto.randomFill), as the product's cache fills its blocks
 * from fs reads.
 *
 *   node dist-bench/bench/idle-wake.js [--gib 2] [--probes 30] [--gaps 20,300]
 *
 * Prints, per held size and idle gap, the median and 90th percentile of
 * connect → first byte: holding nothing, holding GBs, and holding GBs with
 * the malloc settings of the server bin's shebang (every block a mapping of
 * its own). Each server is a child of this process, ended by it.
 */
import { spawn } from 'node:child_process'
import { randomFill } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { serverEnv } from './servers.js'

const BLOCK = 110_000

function serve(bytes: number): void {
  const held: Buffer[] = []
  let left = Math.ceil(bytes / BLOCK)
  const fillOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const buf = Buffer.allocUnsafeSlow(BLOCK)
      randomFill(buf, (err) => {
        if (err) return reject(err)
        held.push(buf)
        resolve()
      })
    })
  const worker = async () => {
    while (left-- > 0) await fillOne()
  }
  void Promise.all([worker(), worker(), worker(), worker()]).then(() => {
    const server = net.createServer((s) => {
      s.on('error', () => {})
      s.end('hello')
    })
    server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as net.AddressInfo).port} ${held.length}\n`))
  })
  process.stdin.on('end', () => process.exit(0)).resume()
}

async function probe(port: number): Promise<number> {
  const t0 = performance.now()
  const s = net.connect(port, '127.0.0.1')
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('data', () => resolve())
      s.once('error', reject)
    })
  } finally {
    s.destroy()
  }
  return performance.now() - t0
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!

async function main(): Promise<void> {
  if (process.argv[2] === '--serve') return serve(Number(process.argv[3]))
  const { values } = parseArgs({ options: { gib: { type: 'string', default: '2' }, probes: { type: 'string', default: '30' }, gaps: { type: 'string', default: '20,300' } } })
  const probes = Math.min(200, Number(values.probes))
  const gaps = values.gaps.split(',').map(Number)
  const gib = Number(values.gib) * 2 ** 30
  const tunables = serverEnv()
  const shown = Object.entries(tunables).map(([k, v]) => `${k}=${v}`).join(' ')
  const runs = [
    { bytes: 0, env: {}, label: '' },
    { bytes: gib, env: {}, label: '' },
    { bytes: gib, env: tunables, label: ` with the bin's ${shown}` },
  ]
  // The baselines run without any malloc settings of the caller's.
  const { GLIBC_TUNABLES: _t, MALLOC_ARENA_MAX: _a, ...plain } = process.env
  for (const { bytes, env, label } of runs) {
    const child = spawn(process.execPath, [process.argv[1]!, '--serve', String(bytes)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...plain, ...env } })
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000) // bounded, whatever happens
    try {
      const [line] = (await once(child.stdout!, 'data')) as [Buffer]
      const [port, blocks] = line.toString().trim().split(' ').map(Number) as [number, number]
      for (const gap of gaps) {
        const ms: number[] = []
        for (let i = 0; i < probes; i++) {
          await new Promise((r) => setTimeout(r, gap))
          ms.push(await probe(port))
        }
        console.log(`holding ${(bytes / 2 ** 30).toFixed(1)} GiB (${blocks} buffers)${label}, idle ${gap} ms: connect → first byte median ${pct(ms, 0.5).toFixed(2)} ms, p90 ${pct(ms, 0.9).toFixed(2)} ms`)
      }
    } finally {
      clearTimeout(killer)
      child.stdin!.end()
      child.kill()
    }
  }
}

main().catch((err: Error) => {
  console.error(`idle-wake: ${err.message}`)
  process.exit(1)
})
