/**
 * A listing of every file of a large tree with its size, from Python
 * (bench/listing.py): through the server's tree, against os.walk + os.stat
 * on a warm page cache and on slow storage (the machine's page, dentry and
 * inode caches dropped, reads throttled). Each contender must find every
 * file of the tree (listing-tree.ts) and its size. The server's first
 * listing after it starts is its warm-up, kept as a row of its own: the
 * figure is the listings after it.
 */
import { fileURLToPath } from 'node:url'
import { alternate, type Measured } from './measure.js'
import { shell, stop } from './procs.js'
import { startBin } from './servers.js'
import { slowStorage } from './slow-storage.js'
import { partPath, TREE, treeShape } from './listing-tree.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, elapsed, fmtBytes, log, MiB } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/listing.py', import.meta.url))
/** Slow storage's read rate, as for the epochs. */
const SLOW_BPS = 150 * MiB
/** Stdlib only: Debian's, as the torch rows, where there is one. */
const PYTHON = '/usr/bin/python3'

export interface ListingResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

/**
 * `parts` parts of the tree (1 or all 10: see listing-tree.ts), made already.
 * `seconds`: no round starts after that long (once `rounds[0]` are done).
 */
export async function listing(parts: number, rounds: [number, number], seconds: number, timeoutMs: number): Promise<ListingResult> {
  const want = treeShape(parts)
  const section = `listing ${want.files.toLocaleString('en-US')} files of 0–64 bytes`
  const deadline = elapsed() + seconds
  // The whole tree, or its first part.
  const dir = parts === 1 ? partPath(0) : TREE
  const rel = parts === 1 ? dir.slice(TREE.length + 1) : ''
  const server = await startBin(TREE, 1024 * MiB)
  const slow = slowStorage(TREE, SLOW_BPS)
  try {
    const notes = 'skipped' in slow ? [`no slow-storage row for ${section}: ${slow.skipped}`] : []
    log(`${section}: ${dir} (${fmtBytes(want.bytes)}), server ${server.url}`)
    /** The slow contender dropped the caches: the others have the tree's metadata read back, untimed, before their turn. */
    let dropped = true
    const rewarm = async () => {
      if (!dropped) return
      const r = await shell('listing rewarm', `du -s '${dir}' > /dev/null`, timeoutMs)
      if (r.code !== 0) throw new BenchError(`du -s ${dir}: exited ${r.code}: ${r.stderr.trim()}`)
      dropped = false
    }
    const list = (label: string, args: string[], before: () => Promise<void>) => async () => {
      await before()
      const r = await shell(label, [PYTHON, SCRIPT, ...args].map((a) => `'${a}'`).join(' '), timeoutMs, true)
      if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const out = JSON.parse(r.stdout.toString()) as { files: number; bytes: number; ms: number }
      if (out.files !== want.files || out.bytes !== want.bytes) throw new BenchError(`${label}: found ${out.files} files, ${out.bytes} bytes; the tree has ${want.files}, ${want.bytes}`)
      return (out.files / out.ms) * 1000
    }
    const tree = list('listing, server', ['server', server.url, rel], rewarm)
    let first = NaN
    const measured = await alternate(
      section,
      [
        { key: 'server', label: 'server, cached (Client.tree)', unit: 'files/s', run: tree, warm: async () => (first = await tree()) },
        { key: 'walk', label: 'os.walk + os.stat, warm page cache', unit: 'files/s', run: list('listing, os.walk', ['walk', dir], rewarm) },
        ...('wrap' in slow
          ? [
              {
                key: 'slow',
                label: `os.walk + os.stat, slow storage (${fmtBytes(slow.bps)}/s, cold)`,
                unit: 'files/s',
                run: list('listing, slow storage', ['slow', dir, slow.procs], async () => void (dropped = true)),
                // Every run starts cold: nothing to warm.
                warm: async () => 'none (each run drops the caches)',
              },
            ]
          : []),
      ],
      { rounds: rounds[1], minRounds: rounds[0], deadline },
      (v) => v.toFixed(0),
    )
    const g = (k: string): Measured => measured.get(k)!
    const firstCall: Measured = { key: 'server-first', label: 'server, its first listing', unit: 'files/s', samples: [first], median: first, spread: 0 }
    return {
      rows: [
        row(section, g('server'), g('walk'), 'the 2nd and later listings of a running server'),
        row(section, firstCall, g('walk'), 'informational: the listing that warms it, page cache warm'),
        row(section, g('walk')),
        ...(measured.has('slow') ? [row(section, g('slow'), g('walk'), 'page, dentry and inode caches dropped (drop_caches 3), reads throttled')] : []),
      ],
      targets: [
        ...(measured.has('slow') ? [ratioTarget(`listing ${want.files.toLocaleString('en-US')} files, server (cached) ≥ 10 × os.walk + stat on slow storage`, g('server'), g('slow'), 10)] : []),
        ratioTarget(`listing ${want.files.toLocaleString('en-US')} files, server (cached) ≥ os.walk + stat on a warm page cache`, g('server'), g('walk'), 1.0),
      ],
      notes,
    }
  } finally {
    if ('remove' in slow) slow.remove()
    await stop(server.child)
  }
}
