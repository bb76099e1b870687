/**
 * The benchmark's own data set, in a temp dir: one large random file and
 * many small random files of ~110 KB (100,000 to 120,000 bytes, seeded sizes),
 * 1,000 to a directory. A manifest beside the served root lists every file
 * with its size and page xor (see Toucher), for the bare server and the checks.
 */
import { randomFillSync } from 'node:crypto'
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { start, stop } from './procs.js'
import { log, MiB, prng, Toucher, xorPages, fmtBytes } from './util.js'

export interface FileInfo {
  /** Relative to the served root. */
  path: string
  size: number
  /** Page xor of the content (Toucher). */
  xor: number
}

export interface Dataset {
  /** The temp dir: root, manifest, sockets. */
  dir: string
  /** The served root. */
  root: string
  big: FileInfo
  small: FileInfo[]
  smallBytes: number
  manifestPath: string
}

export interface DataShape {
  bigBytes: number
  smallFiles: number
}

const SMALL_MIN = 100_000
const SMALL_SPAN = 20_000
const PER_DIR = 1000

/** Let signal handlers (Ctrl-C) run between chunks of synchronous work. */
const breathe = () => new Promise<void>((resolve) => setImmediate(resolve))

export async function makeDataset(dir: string, shape: DataShape): Promise<Dataset> {
  const root = join(dir, 'data')
  mkdirSync(root)
  let t = Date.now()
  const big = await writeRandomFile(root, 'big.bin', shape.bigBytes)
  log(`data: wrote ${big.path}, ${fmtBytes(big.size)} random, in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  t = Date.now()
  const sizeOf = prng(110)
  const small: FileInfo[] = []
  const buf = Buffer.allocUnsafe(SMALL_MIN + SMALL_SPAN)
  let smallBytes = 0
  for (let i = 0; i < shape.smallFiles; i++) {
    if (i % 200 === 0) await breathe()
    if (i % PER_DIR === 0) mkdirSync(join(root, 'small', dirName(i)), { recursive: true })
    const size = SMALL_MIN + Math.floor(sizeOf() * (SMALL_SPAN + 1))
    const data = buf.subarray(0, size)
    randomFillSync(data)
    const path = `small/${dirName(i)}/${String(i).padStart(5, '0')}.bin`
    writeFileSync(join(root, path), data)
    small.push({ path, size, xor: xorPages(data) })
    smallBytes += size
  }
  log(`data: wrote ${small.length} files of ~110 KB, ${fmtBytes(smallBytes)}, in ${((Date.now() - t) / 1000).toFixed(1)} s`)
  // Flush to disk now, so that writeback does not run beside the measurements (the pages stay cached).
  t = Date.now()
  const sync = start('sync', 'sync', [], { stdio: 'ignore' })
  const timer = setTimeout(() => void stop(sync), 60_000)
  await once(sync, 'exit')
  clearTimeout(timer)
  log(`data: sync took ${((Date.now() - t) / 1000).toFixed(1)} s`)
  const manifestPath = join(dir, 'manifest.json')
  writeFileSync(manifestPath, JSON.stringify({ root, big, small }))
  return { dir, root, big, small, smallBytes, manifestPath }
}

function dirName(i: number): string {
  return `d${String(Math.floor(i / PER_DIR)).padStart(2, '0')}`
}

/** `size` random bytes at root/name, written 16 MiB at a time; with their page xor (Toucher). */
export async function writeRandomFile(root: string, name: string, size: number): Promise<FileInfo> {
  const chunk = Buffer.allocUnsafe(16 * MiB)
  const fd = openSync(join(root, name), 'w')
  const t = new Toucher()
  try {
    for (let left = size; left > 0; left -= chunk.length) {
      const part = chunk.subarray(0, Math.min(left, chunk.length))
      randomFillSync(part)
      t.touch(part)
      for (let at = 0; at < part.length; ) at += writeSync(fd, part, at)
      await breathe()
    }
  } finally {
    closeSync(fd)
  }
  return { path: name, size, xor: t.xor }
}
