/**
 * The two-host section on its own:
 *
 *   npm run build:bench && node dist-bench/bench/two-hosts-main.js [BYTES]
 *
 * BYTES is the hot file's size (default 256 MiB; the full bench reads 1 GiB).
 * Needs root for the network namespaces; without them it prints why and exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { killAllNow, markStopping, stopAll } from './procs.js'
import { formatTables } from './table.js'
import { twoHosts } from './two-hosts.js'
import { BenchError, log, MiB } from './util.js'

const bytes = Number(process.argv[2] ?? 256 * MiB)
const tmp = mkdtempSync(join(tmpdir(), 'cacheserv-two-hosts-'))

// On a signal: kill what runs and remove the temp dir; the link goes with the process's exit (netns.ts).
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    markStopping()
    killAllNow()
    rmSync(tmp, { recursive: true, force: true })
    process.exit(sig === 'SIGINT' ? 130 : 143)
  })
}

try {
  const r = await twoHosts(tmp, bytes, [2, 3], 60_000)
  for (const n of r.notes) log(n)
  if (r.rows.length) process.stdout.write(formatTables(r.rows, r.targets) + '\n')
} catch (err) {
  console.error(`two hosts: FAILED: ${err instanceof BenchError ? err.message : ((err as Error).stack ?? String(err))}`)
  process.exitCode = 1
} finally {
  markStopping()
  const left = await stopAll()
  if (left.length) log(`stopped ${left.join(', ')}`)
  rmSync(tmp, { recursive: true, force: true })
}
