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
