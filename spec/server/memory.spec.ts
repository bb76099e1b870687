import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { startServerProcess } from '../helpers/cli.js'
import { tempDir } from '../helpers/fixtures.js'

const MiB = 1024 * 1024
/** The documented bound (README): RSS ≤ 1.05 × cached bytes + 96 MiB. */
const OVERHEAD = 96 * MiB

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  assert.ok(kb, 'VmRSS readable')
  return Number(kb[1]) * 1024
}

/**
 * Whether memory that asks for huge pages (madvise) gets them when first touched: a glibc that
 * asks (2.35 or newer), THP not off, and page faults allowed to find a huge page at once (with
 * defrag "never" or "defer" they come later from khugepaged, if at all).
 */
function hugePagesAtFault(): boolean {
  const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime
  const [major = 0, minor = 0] = (glibc ?? '0.0').split('.').map(Number)
  if (major < 2 || (major === 2 && minor < 35)) return false
  try {
    const enabled = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8')
    const defrag = readFileSync('/sys/kernel/mm/transparent_hugepage/defrag', 'utf8')
    return !/\[never\]/.test(enabled) && /\[(always|madvise|defer\+madvise)\]/.test(defrag)
  } catch {
    return false
  }
}

describe('memory', () => {
  test('server RSS stays within the cache limit plus a bounded overhead with 20,000 cached entries', async (t) => {
    const root = tempDir(t)
    const files = 20_000
    const size = 8 * 1024
    const payload = Buffer.alloc(size, 7)
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(root, `d${d}`))
      for (let i = 0; i < files / 20; i++) writeFileSync(join(root, `d${d}`, `${i}.bin`), payload)
    }
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '256MiB'], { direct: true })
    const client = await connect(server.url)
    t.after(() => client.close())
    const warmed = await client.warm()
    assert.equal(warmed.files, files)
    const stats = await client.stats()
    assert.equal(stats.entries, files)
    assert.equal(stats.cacheBytes, files * size)
    const rss = rssOf(server.child.pid!)
    const bound = 1.05 * stats.cacheBytes + OVERHEAD
    assert.ok(rss <= bound, `RSS ${(rss / MiB).toFixed(1)} MiB exceeds ${(bound / MiB).toFixed(1)} MiB for ${(stats.cacheBytes / MiB).toFixed(1)} MiB cached`)
    t.diagnostic(`RSS ${(rss / MiB).toFixed(1)} MiB for ${(stats.cacheBytes / MiB).toFixed(1)} MiB in ${stats.entries} entries`)

    // The shebang's malloc settings reached the server (env -S), and its blocks sit in huge pages where the kernel has them.
    const env = readFileSync(`/proc/${server.child.pid}/environ`, 'utf8').split('\0')
    // glibc (2.36 here) applies every tunable but leaves only the first in the environment it shows: hugetlb comes first.
    const tunables = env.find((e) => e.startsWith('GLIBC_TUNABLES='))
    assert.match(tunables ?? '', /glibc\.malloc\.hugetlb=1/)
    const huge = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.child.pid}/smaps_rollup`, 'utf8'))
    const hugeBytes = Number(huge?.[1] ?? 0) * 1024
    t.diagnostic(`${(hugeBytes / MiB).toFixed(0)} MiB in huge pages`)
    if (hugePagesAtFault()) assert.ok(hugeBytes > 0, 'some of the cache in huge pages')
  })
})
