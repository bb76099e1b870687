/**
 * The moment the product exists for: a training run on slow storage crashes
 * half-way through its first epoch and is restarted. Measured both ways, on
 * the same files, throttled and dropped from the page cache first:
 *   direct  the script reads the files itself: the first half from the disk,
 *           then the restarted epoch (finding that half in the page cache);
 *   server  the script reads through a cold server, which also runs on the
 *           slow storage and is killed (SIGKILL) with the script; the restarted
 *           server adopts what its shared-memory store kept, and the restarted
 *           epoch reads through it.
 * Each contender's figure is its first half's files/s, with the restarted
 * epoch's as `KEY/restart`; the server's, with the cold server's CPU for the
 * first half.
 */
import { join } from 'node:path'
import type { Contender, Sample } from './measure.js'
import { shell, startServer, stop } from './procs.js'
import { SERVER_BIN } from './servers.js'
import type { SlowStorage } from './slow-storage.js'
import { BenchError, cpuMeter } from './util.js'

export interface CrashSetup {
  python: string
  script: string
  root: string
  listing: string
  files: number
  cacheBytes: number
  slow: SlowStorage
  timeoutMs: number
}

export function crashContenders(c: CrashSetup): Contender[] {
  const py = (args: string[]) => [c.python, c.script, ...args].map((a) => `'${a}'`).join(' ')
  /** Files/s of one run of the script, checking it read what it should. */
  const epoch = async (label: string, args: string[], files: number): Promise<number> => {
    const r = await shell(label, c.slow.wrap(py(args)), c.timeoutMs * 2, true)
    if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
    const out = JSON.parse(r.stdout.toString()) as { files: number; seconds: number }
    if (out.files !== files) throw new BenchError(`${label}: read ${out.files} files, expected ${files}`)
    return out.files / out.seconds
  }
  const half = Math.floor(Math.ceil(c.files / 64) / 2) * 64
  const drop = async () => {
    const r = await shell('drop', py(['drop', c.root, c.listing]), c.timeoutMs, true)
    if (r.code !== 0) throw new BenchError(`dropping the page cache failed: ${r.stderr}`)
  }
  let run = 0
  const server = async (dir: string) => {
    const cmd = `'${SERVER_BIN}' --root '${c.root}' --port 0 --cache-size ${c.cacheBytes} --shm-dir '${dir}' --settle 0`
    const s = await startServer('crash-restart server', 'sh', ['-c', c.slow.wrap(cmd)], 60_000)
    const m = /listening on (\S+)/.exec(s.line)
    if (!m) throw new BenchError(`no address in ${s.line}`)
    return { child: s.child, url: m[1]!, stderr: s.stderr }
  }
  return [
    {
      // The kernel's part of a cold small file, with nothing of the server's: `cat` reads the
      // first half's worth of the files from the slow storage into a tmpfs file. Its CPU is the
      // floor of the server's on the same files (which also answers requests, and copies once where cat copies twice).
      key: 'crash-floor',
      label: 'cat of as many files into tmpfs (the kernel\'s part)',
      unit: 'files/s',
      run: async (): Promise<Sample> => {
        await drop()
        const out = join('/dev/shm', `cacheserv-pipe-bench-floor-${process.pid}`)
        const inner = `cd '${c.root}' && head -n ${half} '${c.listing}' | xargs -d '\\n' cat > '${out}'; rm -f '${out}'; cut -d' ' -f16,17 /proc/$$/stat`
        const t0 = performance.now()
        const r = await shell('floor', c.slow.wrap(`sh -c "${inner}"`), c.timeoutMs * 2, true)
        const seconds = (performance.now() - t0) / 1000
        const ticks = r.stdout.toString().trim().split(' ').map(Number)
        if (r.code !== 0 || ticks.length !== 2 || ticks.some((n) => !Number.isFinite(n))) throw new BenchError(`the cat floor failed (${r.code}): ${r.stdout} ${r.stderr}`)
        // Children's user and system time, in clock ticks of 10 ms.
        return { value: half / seconds, cpu: { client: ((ticks[0] + ticks[1]) * 10) / (half / 1000), server: NaN } }
      },
    },
    {
      key: 'crash-direct',
      label: 'direct reads',
      unit: 'files/s',
      run: async (): Promise<Sample> => {
        await drop()
        const first = await epoch('direct, until the crash', ['local', c.root, c.listing, 'half'], half)
        const restart = await epoch('direct, restarted', ['local', c.root, c.listing], c.files)
        return { value: first, also: { restart } }
      },
    },
    {
      key: 'crash-server',
      label: 'through the server',
      unit: 'files/s',
      run: async (): Promise<Sample> => {
        await drop()
        // Named as the servers name their stores, so a server started later sweeps it away if this run is cut short.
        const dir = join('/dev/shm', `cacheserv-pipe-bench-crash-${process.pid}-${run++}`)
        const cold = await server(dir)
        let restarted: Awaited<ReturnType<typeof server>> | null = null
        try {
          // The cold server's CPU for each file it read from the disk (its client runs in its own process).
          const cpu = cpuMeter(cold.child.pid)
          const first = await epoch('server, until the crash', ['server', cold.url, c.listing, 'half'], half)
          const used = cpu()
          cold.child.kill('SIGKILL')
          await stop(cold.child)
          restarted = await server(dir)
          if (!/adopted \d+ cached blocks/.test(restarted.stderr())) throw new BenchError(`the restarted server adopted nothing: ${restarted.stderr()}`)
          const restart = await epoch('server, restarted', ['server', restarted.url, c.listing], c.files)
          return { value: first, also: { restart }, cpu: { client: NaN, server: used.server / (half / 1000) } }
        } finally {
          if (cold.child.exitCode === null) cold.child.kill('SIGKILL')
          // A clean exit removes the store.
          if (restarted) await stop(restarted.child)
        }
      },
    },
  ]
}
