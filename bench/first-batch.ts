/**
 * Time to first batch of a restarted training script (bench/first-batch.py)
 * on the DataLoader epoch's files: from just after its imports to its first
 * batch of 64 (2 workers, a seeded shuffle), the script building its index
 * itself. Alternating:
 *   server      the index is the server's tree; the server holds the files
 *               already (it read them before the restart); each worker
 *               connects as it starts;
 *   page cache  os.walk and open(), the files and their metadata cached;
 *   slow        the same on slow storage, the machine's page, dentry and
 *               inode caches dropped first.
 * Each round's seed is the same for every contender, so each reads the same
 * first batch: its bytes and labels are compared. The part of the time the
 * index took is kept as `KEY/index`.
 */
import { closeSync, openSync, readdirSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect } from '../lib/index.js'
import { alternate, type Measured, type Sample } from './measure.js'
import type { MlImages } from './ml-epoch.js'
import { shell, stop } from './procs.js'
import { startBin } from './servers.js'
import { slowStorage } from './slow-storage.js'
import { row, type Row, type Target } from './table.js'
import { BenchError, elapsed, fmtBytes, log, MiB, signedMs, withTimeout } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/first-batch.py', import.meta.url))
/** Slow storage's read rate, as for the epochs. */
const SLOW_BPS = 150 * MiB
/** How much later than the page cache the server's first batch may come. */
const OVER_MS = 50

export interface FirstBatchResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

/** The data set's files (*.jpg, one level down), each read once: their pages, dentries and inodes cached again. */
function recache(root: string): void {
  const buf = Buffer.allocUnsafe(1 * MiB)
  for (const d of readdirSync(root, { withFileTypes: true })) {
    if (!d.isDirectory()) continue
    for (const name of readdirSync(join(root, d.name))) {
      if (!name.endsWith('.jpg')) continue
      const fd = openSync(join(root, d.name, name), 'r')
      try {
        while (readSync(fd, buf) > 0);
      } finally {
        closeSync(fd)
      }
    }
  }
}

/** `seconds`: no round starts after that long (once `rounds[0]` are done). */
export async function firstBatch(images: MlImages, rounds: [number, number], seconds: number, timeoutMs: number): Promise<FirstBatchResult> {
  const section = `time to first batch, ${images.files.toLocaleString('en-US')} × ~120 KB files`
  const deadline = elapsed() + seconds
  const classes = readdirSync(images.root).filter((d) => d.startsWith('class'))
  const server = await startBin(images.root, Math.ceil((images.bytes * 1.2 + 256 * MiB) / MiB) * MiB)
  const slow = slowStorage(images.root, SLOW_BPS)
  try {
    const control = await connect(server.url)
    let warmed = 0
    for (const c of classes) warmed += (await withTimeout(control.warm(c), timeoutMs, `warm ${c}`)).files
    await control.close()
    if (warmed !== images.files) throw new BenchError(`${section}: warm cached ${warmed} of ${images.files} files`)
    log(`${section}: server ${server.url} holds the ${fmtBytes(images.bytes)} of ${classes.length} class folders`)
    const notes = 'skipped' in slow ? [`no slow-storage row for ${section}: ${slow.skipped}`] : []
    let seed = 0
    /** The first batch each seed gave: every contender must get the same. */
    const firsts = new Map<number, string>()
    /** The slow contender dropped the caches: the others have the files and their metadata read back, untimed, before their turn. */
    let dropped = true
    const rewarm = () => {
      if (!dropped) return
      const t = elapsed()
      recache(images.root)
      dropped = false
      return `files and metadata cached again in ${(elapsed() - t).toFixed(1)} s (not timed)`
    }
    /** A run of the script: `first-batch.py MODE WHERE SEED [...after]`. */
    const script = (label: string, [mode, where]: [string, string], before: () => void, after: string[] = []) => async (): Promise<Sample> => {
      before()
      const r = await shell(label, [images.python, SCRIPT, mode, where, String(seed), ...after].map((a) => `'${a}'`).join(' '), timeoutMs, true)
      if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const out = JSON.parse(r.stdout.toString()) as { ms: number; index_ms: number; files: number; bytes: number; labels: number }
      if (out.files !== images.files) throw new BenchError(`${label}: an index of ${out.files} files, expected ${images.files}`)
      const batch = `${out.bytes} bytes, labels summing to ${out.labels}`
      const first = firsts.get(seed)
      if (first === undefined) firsts.set(seed, batch)
      else if (first !== batch) throw new BenchError(`${label}: first batch of seed ${seed}: ${batch}; another contender's: ${first}`)
      return { value: out.ms, also: { index: out.index_ms } }
    }
    const measured = await alternate(
      section,
      [
        { key: 'server', label: 'index and batch through the server (holding the files)', unit: 'ms', run: script('first batch, server', ['server', server.url], rewarm) },
        { key: 'local', label: 'os.walk + open() from the page cache', unit: 'ms', run: script('first batch, page cache', ['local', images.root], rewarm), warm: async () => rewarm() ?? 'files and metadata cached already' },
        ...('wrap' in slow
          ? [
              {
                key: 'slow',
                label: `os.walk + open() from slow storage (${fmtBytes(slow.bps)}/s, cold)`,
                unit: 'ms',
                run: script('first batch, slow storage', ['slow', images.root], () => void (dropped = true), [slow.procs]),
                // Every run starts cold: nothing to warm.
                warm: async () => 'none (each run drops the caches)',
              },
            ]
          : []),
      ],
      { rounds: rounds[1], minRounds: rounds[0], deadline, onRound: (r) => void (seed = r + 1) },
      (v) => v.toFixed(1),
    )
    const g = (k: string): Measured => measured.get(k)!
    const diff = g('server').median - g('local').median
    const index = (k: string) => `index ${g(`${k}/index`).median.toFixed(1)} ms`
    const pass = diff <= OVER_MS
    return {
      rows: [
        row(section, g('server'), g('local'), `${signedMs(diff)}; ${index('server')}: CacheservDataset.from_dir (the server's tree); ds.loader, workers connecting as they start`),
        row(section, g('local'), undefined, `${index('local')}: os.walk in name order; a Dataset of open()/read()`),
        ...(measured.has('slow') ? [row(section, g('slow'), g('local'), `${index('slow')}; the same script, page, dentry and inode caches dropped (drop_caches 3), reads throttled`)] : []),
      ],
      targets: [
        {
          name: `time to first batch through the server ≤ page cache + ${OVER_MS} ms`,
          measured: `${g('server').median.toFixed(1)} ms vs ${g('local').median.toFixed(1)} ms (${signedMs(diff)})`,
          required: `≤ +${OVER_MS} ms`,
          pass,
          margin: pass ? `${(OVER_MS - diff).toFixed(1)} ms to spare` : `misses by ${(diff - OVER_MS).toFixed(1)} ms`,
          spread: Math.max(g('server').spread, g('local').spread),
        },
      ],
      notes,
    }
  } finally {
    if ('remove' in slow) slow.remove()
    await stop(server.child)
  }
}
