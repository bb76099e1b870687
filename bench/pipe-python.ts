/**
 * The CLI's headline use on one host: `cacheserv-pipe-client read f |
 * python` (a readinto loop over stdin) on a 512 MiB file held by a warm
 * server, against the same Python loop reading the file from slow storage
 * (cold) and from the page cache. Wall times, Node's and Python's start
 * included; each run's byte count and sampled xor are checked.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from '../lib/index.js'
import { alternate, type Measured } from './measure.js'
import { shell, stop } from './procs.js'
import { CLIENT_BIN, startBin } from './servers.js'
import { slowStorage } from './slow-storage.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, fmtBytes, log, MiB, prng, xorPages } from './util.js'

/** Slow storage's read rate: a network disk's. */
const SLOW_BPS = 150 * MiB

/** A training script's input loop: readinto a reused 1 MiB buffer until EOF; prints the bytes and the xor of one byte per 4 KiB. */
const LOOP = [
  'import sys',
  'f = sys.stdin.buffer.raw',
  'm = memoryview(bytearray(1 << 20))',
  'n = x = 0',
  'while True:',
  '    k = f.readinto(m)',
  '    if not k: break',
  '    for v in m[(-n) % 4096:k:4096]: x ^= v',
  '    n += k',
  'print(n, x)',
].join('\n')

/** Drop one file's pages from the page cache. */
const DROP = 'import os, sys\nfd = os.open(sys.argv[1], os.O_RDONLY)\nos.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)'

export interface PipeResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

export async function pipeIntoPython(tmp: string, bytes: number, rounds: [number, number], timeoutMs: number): Promise<PipeResult> {
  const section = `${fmtBytes(bytes)} into Python through a pipe`
  const root = join(tmp, 'pipe')
  mkdirSync(root, { recursive: true })
  const file = join(root, 'big')
  const data = Buffer.allocUnsafe(bytes)
  const rand = prng(7)
  for (let i = 0; i < bytes; i += 4) data.writeUInt32LE(rand() >>> 0, i)
  const fd = openSync(file, 'w')
  writeSync(fd, data)
  closeSync(fd)
  const want = `${bytes} ${xorPages(data)}`
  const server = await startBin(root, bytes + 256 * MiB)
  const slow = slowStorage(root, SLOW_BPS)
  try {
    const control = await connect(server.url)
    await control.warm('big')
    await control.close()
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    const py = (label: string, cmd: string, before?: string) => async () => {
      if (before) await shell(`${label} (drop)`, before, timeoutMs)
      const r = await shell(label, cmd, timeoutMs, true)
      const got = r.stdout.toString().trim()
      if (r.code !== 0 || got !== want) throw new BenchError(`${label}: exited ${r.code}, read "${got}" (want "${want}"): ${r.stderr.trim().split('\n').slice(-2).join(' ')}`)
      return bytes / 1e9 / (r.ms / 1000)
    }
    const loop = `python3 -c ${q(LOOP)}`
    const measured = await alternate(
      section,
      [
        { key: 'cli', label: '`cacheserv-pipe-client read f | python`, server warm', unit: 'GB/s', run: py('pipe cli', `${CLIENT_BIN} --server ${server.url} read big | ${loop}`) },
        { key: 'local', label: '`python < f` from the page cache', unit: 'GB/s', run: py('pipe local', `${loop} < ${q(file)}`) },
        ...('wrap' in slow
          ? [{ key: 'slow', label: `\`python < f\` from slow storage (${fmtBytes(slow.bps)}/s, cold)`, unit: 'GB/s', run: py('pipe slow', slow.wrap(`${loop} < ${q(file)}`), `python3 -c ${q(DROP)} ${q(file)}`) }]
          : []),
      ],
      { rounds: rounds[1], minRounds: rounds[0], deadline: Infinity },
    )
    const g = (k: string): Measured => measured.get(k)!
    log(`${section}: done`)
    return {
      rows: [row(section, g('cli'), measured.has('slow') ? g('slow') : g('local'), 'wall time, Node and Python start-up included'), row(section, g('local')), ...(measured.has('slow') ? [row(section, g('slow'))] : [])],
      targets: measured.has('slow') ? [ratioTarget('cacheserv-pipe-client read f | python ≥ 8 × slow storage (cold)', g('cli'), g('slow'), 8)] : [],
      notes: 'skipped' in slow ? [`no slow-storage row for ${section}: ${slow.skipped}`] : [],
    }
  } finally {
    if ('remove' in slow) slow.remove()
    await stop(server.child)
  }
}
