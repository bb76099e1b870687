/**
 * The ML workload: one epoch of a PyTorch DataLoader (2 workers, batches of
 * 64, shuffled, raw bytes) over ~120 KB files in class folders, as a training
 * script reads them (bench/ml-epoch.py), alternating: through the server with
 * short-circuit reads, through the server over the socket, and the same files
 * with open() from the page cache; and the same files packed in 8 tar
 * shards, read WebDataset-style through the server and with tarfile from the
 * page cache. Needs a Python with torch (Debian's python3-torch for
 * /usr/bin/python3); skipped with a note otherwise.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { connect } from '../lib/index.js'
import { alternate, type Measured } from './measure.js'
import { shell, stop } from './procs.js'
import { rssOf, startBin } from './servers.js'
import { crashContenders } from './crash-restart.js'
import { slowStorage } from './slow-storage.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, fmtBytes, log, MiB } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/ml-epoch.py', import.meta.url))
const CLASSES = 10
const SHARDS = 8
/** Slow storage's read rate: a network disk's. */
const SLOW_BPS = 150 * MiB

/** The epoch's files, left in place for the sections after it. */
export interface MlImages {
  /** Holds class0/ … class9/ (the files, *.jpg) and shards/. */
  root: string
  files: number
  bytes: number
  /** The Python that imports torch. */
  python: string
}

export interface MlResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
  images: MlImages | null
}

/** A Python that imports torch, or null. */
export function torchPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 }).status === 0) return py
  }
  return null
}

/** `files` files of 90–150 KB under dir/classN/, each distinct; returns their relative paths and total bytes. */
export function makeImages(dir: string, files: number): { paths: string[]; bytes: number } {
  const piece = Buffer.alloc(150 * 1024)
  for (let i = 0; i < piece.length; i++) piece[i] = (i * 2654435761) >>> 24
  const paths: string[] = []
  let bytes = 0
  let seed = 12345
  for (let c = 0; c < CLASSES; c++) mkdirSync(join(dir, `class${c}`), { recursive: true })
  for (let i = 0; i < files; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    const size = 90 * 1024 + (seed % (60 * 1024))
    const rel = `class${i % CLASSES}/${String(i).padStart(6, '0')}.jpg`
    piece.writeUInt32BE(i, 0)
    const fd = openSync(join(dir, rel), 'w')
    writeSync(fd, piece, 0, size)
    closeSync(fd)
    paths.push(rel)
    bytes += size
  }
  return { paths, bytes }
}

/** The files packed in SHARDS tar shards under dir/shards/, in order; returns the shards' paths relative to dir. */
function makeShards(dir: string, paths: string[]): string[] {
  mkdirSync(join(dir, 'shards'))
  const shards: string[] = []
  for (let k = 0; k < SHARDS; k++) {
    const rel = `shards/shard-${String(k).padStart(4, '0')}.tar`
    const members = join(dir, 'shards', `members-${k}.txt`)
    writeFileSync(members, paths.slice(Math.floor((k * paths.length) / SHARDS), Math.floor(((k + 1) * paths.length) / SHARDS)).join('\n') + '\n')
    const r = spawnSync('tar', ['-cf', join(dir, rel), '-C', dir, '-T', members], { encoding: 'utf8' })
    rmSync(members)
    if (r.status !== 0) throw new BenchError(`tar -cf ${rel}: ${r.stderr}`)
    shards.push(rel)
  }
  return shards
}

export async function mlEpochs(tmp: string, files: number, rounds: [number, number], timeoutMs: number): Promise<MlResult> {
  const section = `DataLoader epoch, ${files.toLocaleString('en-US')} × ~120 KB files`
  const python = torchPython()
  if (!python) return { rows: [], targets: [], notes: [`no ${section} rows: no Python that imports torch (apt-get install python3-torch)`], images: null }
  const root = join(tmp, 'images')
  const { paths, bytes } = makeImages(root, files)
  const listing = join(tmp, 'images.txt')
  writeFileSync(listing, paths.join('\n'))
  const shardList = join(tmp, 'shards.txt')
  writeFileSync(shardList, makeShards(root, paths).join('\n'))
  // The files and their shards.
  const cacheBytes = Math.ceil((2 * bytes * 1.2 + 256 * MiB) / MiB) * MiB
  const server = await startBin(root, cacheBytes)
  let slow: ReturnType<typeof slowStorage> = { skipped: 'not set up' }
  try {
    const control = await connect(server.url)
    const warmed = await control.warm('')
    if (warmed.files !== files + SHARDS) throw new BenchError(`${section}: warm cached ${warmed.files} of ${files} files and ${SHARDS} shards`)
    log(`${section}: ${fmtBytes(bytes)}, server ${server.url} warm; page cache warm from writing them`)
    // Slow storage: reads of the dataset's device throttled (cgroup v1 blkio), the files dropped from the page cache first.
    slow = slowStorage(root, SLOW_BPS)
    const notes = 'skipped' in slow ? [`no slow-storage row: ${slow.skipped}`] : []
    let seed = 0
    const epoch = (label: string, args: string[], wrap = (cmd: string) => cmd) => async () => {
      const r = await shell(label, wrap([python, SCRIPT, ...args].map((a) => `'${a}'`).join(' ')), timeoutMs, true)
      if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const out = JSON.parse(r.stdout.toString()) as { files: number; bytes: number; seconds: number }
      if (out.files !== files || out.bytes !== bytes) throw new BenchError(`${label}: read ${out.files} files, ${out.bytes} bytes; expected ${files}, ${bytes}`)
      return out.files / out.seconds
    }
    const measured = await alternate(
      section,
      [
        { key: 'shm', label: 'server, short-circuit (shared memory)', unit: 'files/s', run: epoch('ml shm', ['server', server.url, listing]) },
        { key: 'socket', label: 'server, over the socket', unit: 'files/s', run: epoch('ml socket', ['server', server.url, listing, 'socket']) },
        { key: 'local', label: 'open() from the page cache', unit: 'files/s', run: epoch('ml local', ['local', root, listing]) },
        { key: 'tar-shm', label: `${SHARDS} tar shards, server (TarShardDataset)`, unit: 'files/s', run: epoch('ml tar shm', ['tar-server', server.url, shardList]) },
        { key: 'tar-local', label: `${SHARDS} tar shards, tarfile from the page cache`, unit: 'files/s', run: epoch('ml tar local', ['tar-local', root, shardList]) },
        ...('wrap' in slow
          ? [{ key: 'slow', label: `open() from slow storage (${fmtBytes(slow.bps)}/s, cold)`, unit: 'files/s', run: epoch('ml slow', ['local', root, listing, 'cold'], slow.wrap) }]
          : []),
      ],
      { rounds: rounds[1], minRounds: rounds[0], deadline: Infinity, onRound: () => void (process.env.EPOCH_SEED = String(seed++)) },
      (v) => v.toFixed(0),
    )
    const stats = await control.stats()
    await control.close()
    const rss = rssOf(server.child.pid!)
    // A first epoch on slow storage that crashes half-way, and its restart, with and without the server.
    const crashName = `crash at half an epoch on slow storage, and restart (${files.toLocaleString('en-US')} files)`
    const crash =
      'wrap' in slow
        ? await alternate(crashName, crashContenders({ python, script: SCRIPT, root, listing, files, cacheBytes, slow, timeoutMs }), { rounds: rounds[0], minRounds: rounds[0], deadline: Infinity }, (v) => v.toFixed(0))
        : null
    const g = (k: string): Measured => measured.get(k)!
    const bound = 1.05 * stats.cacheBytes + 80 * MiB
    return {
      rows: [
        row(section, g('shm'), g('local'), 'CacheservDataset.loader(), 2 workers'),
        row(section, g('socket'), g('local'), 'the same with short_circuit=False'),
        row(section, g('local')),
        row(section, g('tar-shm'), g('tar-local'), 'TarShardDataset, 2 workers, a shard\'s stream at a time'),
        row(section, g('tar-local')),
        ...(measured.has('slow') ? [row(section, g('slow'))] : []),
        ...(crash
          ? [
              row(crashName, crash.get('crash-server')!, crash.get('crash-direct')!, 'the first half, server cold (on the same slow storage)'),
              row(crashName, crash.get('crash-direct')!),
              row(crashName, crash.get('crash-server/restart')!, crash.get('crash-direct/restart')!, 'the restarted epoch: the server adopts its store'),
              row(crashName, crash.get('crash-direct/restart')!, undefined, 'the restarted epoch, direct: the first half is in the page cache'),
              row(crashName, crash.get('crash-floor')!, undefined, 'the floor of the server\'s CPU per cold file'),
            ]
          : []),
      ],
      targets: [
        ratioTarget('DataLoader epoch through the server (warm) ≥ 0.8 × the page cache', g('shm'), g('local'), 0.8),
        ratioTarget('DataLoader epoch over tar shards through the server ≥ 0.8 × tarfile from the page cache', g('tar-shm'), g('tar-local'), 0.8),
        ...(measured.has('slow') ? [ratioTarget('DataLoader epoch through the server (warm) ≥ 10 × slow storage', g('shm'), g('slow'), 10)] : []),
        ...(crash
          ? [
              ratioTarget('first epoch through a cold server ≥ 1.0 × direct reads (slow storage)', crash.get('crash-server')!, crash.get('crash-direct')!, 1.0),
              ratioTarget('restart after a crash at half an epoch, through the server ≥ 1.0 × direct', crash.get('crash-server/restart')!, crash.get('crash-direct/restart')!, 1.0),
              coldCpuTarget(crash.get('crash-server')!, crash.get('crash-floor')!),
            ]
          : []),
        {
          name: 'server RSS (store pages included) ≤ 1.05 × cached + 80 MiB',
          measured: `${fmtBytes(rss)} for ${fmtBytes(stats.cacheBytes)} cached`,
          required: `≤ ${fmtBytes(bound)}`,
          pass: rss <= bound,
          margin: rss <= bound ? `${fmtBytes(bound - rss)} to spare` : `over by ${fmtBytes(rss - bound)}`,
          spread: 0,
        },
      ],
      notes,
      images: { root, files, bytes, python },
    }
  } finally {
    if ('remove' in slow) slow.remove()
    await stop(server.child)
  }
}

/** The cold server's CPU per file read from slow storage, against the 0.1 ms asked of it and the kernel's part alone (cat into tmpfs). */
function coldCpuTarget(server: Measured, floor: Measured): Target {
  const ms = (server.cpu?.server ?? NaN) / 1000
  const kernel = (floor.cpu?.client ?? NaN) / 1000
  return {
    name: `server CPU per cold small file ≤ 0.1 ms (cat of the same number of files into tmpfs costs ${kernel.toFixed(3)} ms a file)`,
    measured: `${ms.toFixed(3)} ms`,
    required: '≤ 0.100 ms',
    pass: ms <= 0.1,
    margin: ms <= 0.1 ? `${(0.1 - ms).toFixed(3)} ms to spare` : `over by ${(ms - 0.1).toFixed(3)} ms; ${(ms - kernel).toFixed(3)} ms above cat's`,
    spread: Math.max(server.spread, floor.spread),
  }
}
