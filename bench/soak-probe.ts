/**
 * The soak's responsiveness probe, run as a process of its own so that the
 * soak's busy event loop does not count as the server's latency.
 *
 *   node dist-bench/bench/soak-probe.js URL PATH
 *
 * Once a second: connect afresh, `stat` PATH, read its first 4 KiB, hang up;
 * print one JSON line per probe: {"t","ms","ok","size","sha","err"}, where
 * `ms` covers all of it and `sha` is the sha256 of the bytes read. A probe
 * with no outcome within 5 s is reported as failed and the next one starts.
 * Runs until it is sent SIGTERM or its stdin closes.
 */
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { type Client, connect } from '../lib/client/client.js'
import { CacheservError } from '../lib/errors.js'

const [url, path] = process.argv.slice(2)
if (!url || !path) {
  console.error('usage: node dist-bench/bench/soak-probe.js URL PATH')
  process.exit(2)
}

let stopping = false
process.once('SIGTERM', () => (stopping = true))
process.stdin.on('end', () => (stopping = true)).resume()

async function probe(): Promise<{ size: number; sha: string }> {
  let client: Client | undefined
  try {
    client = await connect(url, { timeout: 5000 })
    const st = await client.stat(path)
    const chunks: Buffer[] = []
    await new Promise<void>((resolve, reject) => {
      const s = client!.read(path, { offset: 0, length: 4096 })
      s.on('data', (c: Buffer) => chunks.push(c))
      s.on('end', resolve)
      s.on('error', reject)
    })
    return { size: st.size, sha: createHash('sha256').update(Buffer.concat(chunks)).digest('hex') }
  } finally {
    await client?.close().catch(() => {})
  }
}

const t0 = Date.now()
while (!stopping) {
  const started = Date.now()
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 5000)))
  const line: Record<string, unknown> = { t: (started - t0) / 1000 }
  try {
    const r = await Promise.race([probe(), late])
    if (r === 'late') Object.assign(line, { ok: false, err: 'no outcome within 5 s' })
    else Object.assign(line, { ok: true, ...r })
  } catch (err) {
    Object.assign(line, { ok: false, err: `${err instanceof CacheservError ? err.code : (err as Error)?.name}: ${(err as Error)?.message ?? String(err)}` })
  } finally {
    clearTimeout(timer)
  }
  line.ms = Date.now() - started
  process.stdout.write(JSON.stringify(line) + '\n')
  const next = started + 1000 - Date.now()
  if (next > 0 && !stopping) await sleep(next)
}
process.exit(0)
