/** The client CLI's human output: sizes in IEC units, the `stats` summary and the `warm` summary line. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ServerStatsResult, WarmResult } from '../../lib/client/client.js'
import { formatStats, formatWarm, size } from '../../lib/cli/format.js'
import { NO_SHARED_TIER } from '../../lib/server/server-stats.js'

const MiB = 1024 * 1024

/** The counters of the README's example summary. */
const README_STATS: ServerStatsResult = {
  hits: 40,
  misses: 10,
  hitBytes: 8_325_000,
  missBytes: 2_081_000,
  evictions: 0,
  diskReads: 36,
  cacheBytes: 5_200_000,
  cacheLimit: 5 * MiB,
  entries: 26,
  pinnedBytes: 0,
  policy: 'tinylfu',
  metaHits: 0,
  metaMisses: 0,
  metaBytes: 0,
  metaDirs: 0,
  // No shared tier.
  ...NO_SHARED_TIER,
  nacks: 0,
  bufferedBytes: 0,
  bufferedLimit: 4 * MiB,
  stalledClosed: 0,
  connections: 1,
  totalConnections: 3,
  bytesServed: 10_406_000,
  locatedBytes: 0,
  httpBytesServed: 0,
  pinnedFiles: 0,
  shm: null,
  uptime: 12.04,
}

const line = (text: string, label: string) => text.split('\n').find((l) => l.startsWith(label))

describe('size', () => {
  it('is in powers of 1024 with IEC units, up to two decimals', () => {
    assert.deepEqual([0, 1000, 1024, 1536, 5 * MiB - 1, 2 ** 30, 1.5 * 2 ** 40].map(size), ['0 B', '1000 B', '1 KiB', '1.5 KiB', '5 MiB', '1 GiB', '1.5 TiB'])
  })
})

describe('formatStats', () => {
  it('prints the README\'s example summary from its counters', () => {
    assert.equal(
      formatStats(README_STATS),
      [
        'cache      4.96 MiB of 5 MiB in 26 blocks (policy tinylfu)',
        'hits       40 (7.94 MiB), misses 10 (1.98 MiB): 80.0% of bytes from RAM',
        'evictions  0, disk reads 36',
        'served     9.92 MiB; 1 connections open, 3 since start; 0 NACKs',
        'uptime     12.0 s',
      ].join('\n'),
    )
  })

  it('says there were no reads yet rather than divide by zero', () => {
    assert.match(formatStats({ ...README_STATS, hits: 0, misses: 0, hitBytes: 0, missBytes: 0 }), /^hits {7}0 \(0 B\), misses 0 \(0 B\): no reads yet$/m)
  })

  it('writes counts with thousands separators', () => {
    const text = formatStats({ ...README_STATS, hits: 1_234_567, entries: 26_000, diskReads: 1000, totalConnections: 12_345, nacks: 2_000 })
    assert.match(line(text, 'hits')!, /^hits {7}1,234,567 /)
    assert.match(line(text, 'cache')!, / in 26,000 blocks /)
    assert.equal(line(text, 'evictions'), 'evictions  0, disk reads 1,000')
    assert.match(line(text, 'served')!, /12,345 since start; 2,000 NACKs$/)
  })

  it('shows bytes given in shared memory beside those served over the socket', () => {
    assert.equal(line(formatStats({ ...README_STATS, locatedBytes: 3 * MiB }), 'served'), 'served     9.92 MiB (and 3 MiB in shared memory); 1 connections open, 3 since start; 0 NACKs')
  })

  it('has a shared line only with a Redis tier, saying whether Redis is asked now', () => {
    const shared = { sharedHits: 5, sharedMisses: 2, sharedErrors: 3, sharedCorrupt: 1, sharedReadBytes: 5 * MiB, sharedWrittenBytes: 2 * MiB, sharedSkipped: 4 }
    assert.equal(
      line(formatStats({ ...README_STATS, ...shared, sharedUp: true }), 'shared'),
      'shared     Redis up: 5 hits (5 MiB), 2 misses, 3 errors (1 corrupt); stored 2 MiB, 4 blocks not stored',
    )
    assert.match(line(formatStats({ ...README_STATS, ...shared, sharedUp: false }), 'shared')!, /^shared {5}Redis left alone \(retried every second\): 5 hits/)
    assert.equal(line(formatStats(README_STATS), 'shared'), undefined, 'sharedUp null: no Redis tier')
    const { sharedUp: _gone, ...older } = README_STATS
    assert.equal(line(formatStats(older as ServerStatsResult), 'shared'), undefined, 'a server that does not report it')
  })

  it('has a memory line for a cache in shared memory, before the uptime', () => {
    const text = formatStats({ ...README_STATS, shm: { dir: '/dev/shm/cacheserv-pipe-1000-abc', blocks: 26, bytes: 5_242_880 } })
    assert.deepEqual(text.split('\n').slice(-2), ['memory     shared, 26 blocks in 5 MiB of pages under /dev/shm/cacheserv-pipe-1000-abc', 'uptime     12.0 s'])
  })

  it('gives the uptime in ms under a second, tenths of seconds under a minute, then minutes and hours', () => {
    const uptime = (s: number) => line(formatStats({ ...README_STATS, uptime: s }), 'uptime')!.replace(/^uptime +/, '')
    assert.deepEqual([0.25, 1, 59.94, 61, 3599, 3725, 90_061].map(uptime), ['250 ms', '1.0 s', '59.9 s', '1m 01s', '59m 59s', '1h 02m 05s', '25h 01m 01s'])
  })
})

describe('formatWarm', () => {
  const base: WarmResult = { files: 26, bytes: 5_200_937, totalFiles: 50, totalBytes: 10_000_000, full: true }

  it('prints the README\'s example line: what was loaded of what there was, how fast, and why it stopped', () => {
    assert.equal(formatWarm(base, 0.031), 'warmed 26 files, 4.96 MiB of 50 files, 9.54 MiB in 31 ms, 160 MiB/s; the cache is full, so it stopped at its limit')
  })

  it('leaves out the totals when everything was loaded, and the rate when no time passed', () => {
    assert.equal(formatWarm({ files: 3, bytes: 2048, totalFiles: 3, totalBytes: 2048, full: false }, 2), 'warmed 3 files, 2 KiB in 2.0 s, 1 KiB/s')
    assert.equal(formatWarm({ files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false }, 0), 'warmed 0 files, 0 B in 0 ms')
  })

  it('names the skipped paths of a list with their codes, and says when more were skipped than named', () => {
    const skippedPaths = [{ path: 'nope.bin', code: 'ENOENT' }, { path: 'dir', code: 'EISDIR' }]
    const w: WarmResult = { files: 1, bytes: 10, totalFiles: 1, totalBytes: 10, full: false, skipped: 2, skippedPaths }
    assert.equal(formatWarm(w, 0), 'warmed 1 files, 10 B in 0 ms; skipped 2 listed paths (nope.bin: ENOENT, dir: EISDIR)')
    assert.match(formatWarm({ ...w, skipped: 25 }, 0), /; skipped 25 listed paths \(nope\.bin: ENOENT, dir: EISDIR, \.\.\.\)$/)
  })
})
