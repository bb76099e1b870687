/**
 * A first epoch on a root with latency per read: the DataLoader epoch's files
 * seen through a FUSE view that waits before every read, as a network mount
 * does (spec/helpers/latency-fs.ts; every read pays it: the view bypasses the
 * page cache). Throughput is not the limit, round trips are, so what counts
 * is how many reads are in flight. Alternating, over the same files:
 *   server  a fresh server on the view, cold, its bin as users run it; the
 *           DataLoader (2 workers) reads through it;
 *   direct  the DataLoader (2 workers) reads the view with open();
 *   single  one process reads the view with open(), a file after another.
 * Needs root, /dev/fuse and Debian's python3-fuse; skipped with a note
 * otherwise.
 */
import { mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { latencyFsPython, type LatencyMount, mountLatencyFs } from '../spec/helpers/latency-fs.js'
import { alternate } from './measure.js'
import type { MlImages } from './ml-epoch.js'
import { shell, stop } from './procs.js'
import { startBin } from './servers.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, log, MiB } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/ml-epoch.py', import.meta.url))
/** Each read's wait: a round trip to storage in the same data centre, or a busy NFS server. */
const DELAY_MS = 2

export interface LatencyRootResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

/** `files` of the epoch's (listed in `listing`), `rounds` rounds of each contender. */
export async function latencyRoot(tmp: string, images: MlImages, listing: string, files: number, rounds: number, timeoutMs: number): Promise<LatencyRootResult> {
  const section = `first epoch on a root with ${DELAY_MS} ms per read, ${files.toLocaleString('en-US')} × ~120 KB files`
  const fuse = await latencyFsPython()
  if ('skipped' in fuse) return { rows: [], targets: [], notes: [`no ${section} rows: ${fuse.skipped}`] }
  const paths = readFileSync(listing, 'utf8').split('\n').filter(Boolean).slice(0, files)
  const subset = join(tmp, 'latency-files.txt')
  writeFileSync(subset, paths.join('\n'))
  // Outside tmp: a run cut short removes tmp, and must not walk into a view still mounted.
  const view = mkdtempSync(join(tmpdir(), 'cacheserv-bench-view-'))
  let mount: LatencyMount | null = null
  try {
    mount = await mountLatencyFs(fuse.python, images.root, view, DELAY_MS)
    log(`${section}: ${images.root} seen through ${view}`)
    const epoch = async (label: string, args: string[]): Promise<number> => {
      const r = await shell(label, [images.python, SCRIPT, ...args].map((a) => `'${a}'`).join(' '), timeoutMs, true)
      if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const out = JSON.parse(r.stdout.toString()) as { files: number; seconds: number }
      if (out.files !== paths.length) throw new BenchError(`${label}: read ${out.files} files, expected ${paths.length}`)
      return out.files / out.seconds
    }
    let run = 0
    const measured = await alternate(
      section,
      [
        {
          key: 'server',
          label: 'through a cold server, DataLoader, 2 workers',
          unit: 'files/s',
          run: async () => {
            // Named as servers name their stores, so a server started later sweeps it away if this run is cut short.
            const store = join('/dev/shm', `cacheserv-pipe-bench-latency-${process.pid}-${run++}`)
            const s = await startBin(view, Math.ceil((images.bytes * 1.2) / MiB) * MiB, ['--shm-dir', store], 'latency-root server')
            try {
              return await epoch('latency server', ['server', s.url, subset])
            } finally {
              await stop(s.child) // a clean exit removes the store
            }
          },
        },
        { key: 'direct', label: 'open(), DataLoader, 2 workers', unit: 'files/s', run: () => epoch('latency direct', ['local', view, subset]) },
        { key: 'single', label: 'open(), one reader', unit: 'files/s', run: () => epoch('latency single', ['local', view, subset, 'single']) },
      ],
      { rounds, minRounds: rounds, deadline: Infinity },
      (v) => v.toFixed(0),
    )
    const g = (k: string) => measured.get(k)!
    return {
      rows: [
        row(section, g('server'), g('single'), 'misses overlap: up to 8 reads in flight'),
        row(section, g('direct'), g('single')),
        row(section, g('single')),
      ],
      targets: [ratioTarget(`first epoch through a cold server, ${DELAY_MS} ms per read ≥ 2 × a single direct reader`, g('server'), g('single'), 2)],
      notes: [],
    }
  } finally {
    if (mount) {
      const tally = await mount.stop()
      log(`${section}: the view served ${tally.reads.toLocaleString('en-US')} reads, at most ${tally.mostAtOnce} at once`)
    }
    rmdirSync(view)
  }
}
