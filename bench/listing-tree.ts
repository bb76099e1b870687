/**
 * The tree the listing section lists: up to 1,000,000 files of 0–64 bytes in
 * 10 parts of 100 directories of 1,000 files (tree/pN/dNN/NNN); the quick run
 * lists one part. Making it takes minutes, so it is kept in /var/tmp across
 * runs, each part made once: a part is complete when its marker exists, and
 * the marker is written after the part's last file (and a sync). A part cut
 * short is made again over itself: its names and sizes are fixed.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { start, stop } from './procs.js'
import { BenchError, elapsed, log } from './util.js'

/** Versioned: a change of layout or sizes makes a new tree beside the old one. */
const HOME = '/var/tmp/cacheserv-bench-listing-v1'
export const TREE = join(HOME, 'tree')
export const PART_DIRS = 100
export const DIR_FILES = 1000
export const PART_FILES = PART_DIRS * DIR_FILES
export const MAX_PARTS = 10
/** Seconds one part may take to make (about 5 s on the bench's machine). */
export const PART_LIMIT = 90

/** The size of the i-th file of the tree, 0 to 64 bytes. */
function sizeOf(i: number): number {
  return (Math.imul(i, 2654435761) >>> 0) % 65
}

export function partPath(p: number): string {
  return join(TREE, `p${p}`)
}

function marker(p: number): string {
  return join(HOME, `p${p}.done`)
}

/** Files and bytes of the first `parts` parts. */
export function treeShape(parts: number): { files: number; bytes: number } {
  let bytes = 0
  for (let i = 0; i < parts * PART_FILES; i++) bytes += sizeOf(i)
  return { files: parts * PART_FILES, bytes }
}

/** Parts of the first `parts` not made yet. */
export function missingParts(parts: number): number[] {
  return [...Array(parts).keys()].filter((p) => !existsSync(marker(p)))
}

const breathe = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Make the first `parts` parts that are missing, each within PART_LIMIT seconds; returns the seconds it took (0: all there). */
export async function ensureTree(parts: number): Promise<number> {
  const missing = missingParts(parts)
  if (missing.length === 0) return 0
  const t0 = elapsed()
  const content = Buffer.alloc(64, 'x')
  for (const p of missing) {
    const t = elapsed()
    for (let d = 0; d < PART_DIRS; d++) {
      const dir = join(partPath(p), `d${String(d).padStart(2, '0')}`)
      mkdirSync(dir, { recursive: true })
      const first = p * PART_FILES + d * DIR_FILES
      for (let f = 0; f < DIR_FILES; f++) writeFileSync(join(dir, `${String(f).padStart(3, '0')}`), content.subarray(0, sizeOf(first + f)))
      // Lets Ctrl-C in between directories.
      await breathe()
      if (elapsed() - t > PART_LIMIT) throw new BenchError(`listing tree: part ${p} not made within ${PART_LIMIT} s (${d + 1} of ${PART_DIRS} directories); the parts made are kept`)
    }
    await sync()
    writeFileSync(marker(p), `${PART_FILES} files\n`)
    log(`listing tree: made ${partPath(p)} (${PART_FILES.toLocaleString('en-US')} files) in ${(elapsed() - t).toFixed(1)} s`)
  }
  return elapsed() - t0
}

/** The files' metadata on the disk now, so that writeback does not run beside the measurements. */
async function sync(): Promise<void> {
  const child = start('sync', 'sync', [], { stdio: 'ignore' })
  const timer = setTimeout(() => void stop(child), 60_000)
  await once(child, 'exit')
  clearTimeout(timer)
}
