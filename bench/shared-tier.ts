/**
 * A second host served from the shared tier: two server hosts (network
 * namespaces, each joined to this one by a veth pair) share a Redis Cluster of
 * 3 masters running here. Host A's server reads the ML dataset once, storing
 * every block in Redis; then, each round, a fresh server on host B, on slow
 * storage (cgroup v1 blkio throttle, caches dropped), serves a DataLoader
 * epoch run on host B. Against: the same epoch reading the slow storage
 * directly. Host B's server must read nothing from disk.
 */
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeLink, type Link } from '../spec/helpers/netns.js'
import { NO_REDIS, type RedisCluster, redisInstalled, startRedisCluster } from '../spec/helpers/redis-cluster.js'
import { alternate } from './measure.js'
import type { MlImages } from './ml-epoch.js'
import { shell, startServer, stop } from './procs.js'
import { CLIENT_BIN, SERVER_BIN } from './servers.js'
import { slowStorage } from './slow-storage.js'
import { ratioTarget, row, type Row, type Target } from './table.js'
import { BenchError, fmtBytes, log, MiB } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/ml-epoch.py', import.meta.url))
/** As for the other slow-storage rows. */
const SLOW_BPS = 150 * MiB

export interface SharedTierResult {
  rows: Row[]
  targets: Target[]
  notes: string[]
}

export async function sharedTierEpoch(images: MlImages, listing: string, rounds: [number, number], timeoutMs: number): Promise<SharedTierResult> {
  const section = `second host from the shared tier (Redis Cluster), ${images.files.toLocaleString('en-US')} × ~120 KB files`
  const skip = (why: string): SharedTierResult => ({ rows: [], targets: [], notes: [`no ${section} rows: ${why}`] })
  if (!redisInstalled()) return skip(NO_REDIS)
  const slow = slowStorage(images.root, SLOW_BPS)
  if ('skipped' in slow) return skip(slow.skipped)
  const links: Link[] = []
  let cluster: RedisCluster | null = null
  const children: Awaited<ReturnType<typeof startServer>>[] = []
  try {
    for (let i = 0; i < 2; i++) {
      const link = await makeLink({})
      if ('skipped' in link) return skip(link.skipped)
      links.push(link)
    }
    const [hostA, hostB] = links as [Link, Link]
    // Redis listens on host A's side of its link; host B reaches it through its own link.
    for (const l of links) await run(`route ${l.serverNs}`, ['ip', '-n', l.serverNs, 'route', 'replace', 'default', 'via', l.clientIp], timeoutMs)
    // Room for the dataset twice over (allocator classes, client buffers during host A's stores): a block evicted is a disk read on host B.
    const perNode = `${Math.ceil((images.bytes * 2) / 3 / MiB) + 256}mb`
    cluster = await startRedisCluster({ masters: 3, host: hostA.clientIp, maxmemory: perNode })
    log(`${section}: Redis Cluster ${cluster.urls} (${perNode} a master); hosts ${hostA.serverNs} and ${hostB.serverNs}`)
    const cacheBytes = Math.ceil((images.bytes * 1.3 + 256 * MiB) / MiB) * MiB
    const serverArgs = (ns: Link, extra: string) =>
      `ip netns exec ${ns.serverNs} '${process.execPath}' '${SERVER_BIN}' --root '${images.root}' --port 0 --cache-size ${cacheBytes} --settle 0 --redis '${cluster!.urls}' ${extra}`

    // Host A reads everything once: every block goes to Redis.
    // exec: dash keeps itself as the server's parent, and stopping the shell would leave the server running.
    const a = await startServer('shared-tier host A', 'sh', ['-c', `exec ${serverArgs(hostA, `--host ${hostA.serverIp} --insecure-no-auth --no-shm`)}`], 60_000)
    children.push(a)
    const urlA = addressOf(a.line)
    const warmed = await run('host A warm', [process.execPath, CLIENT_BIN, '--server', urlA, 'warm'], timeoutMs * 3)
    log(`${section}: host A ${warmed.trim().split('\n').pop()}`)
    for (let i = 0; ; i++) {
      const st = JSON.parse(await run('host A stats', [process.execPath, CLIENT_BIN, '--server', urlA, 'stats', '--json'], timeoutMs)) as Record<string, number>
      if (st.sharedWrittenBytes! >= images.bytes) break
      if (i > 600) throw new BenchError(`${section}: host A stored ${st.sharedWrittenBytes} of ${images.bytes} bytes in Redis (${st.sharedErrors} errors, ${st.sharedSkipped} skipped)`)
      await new Promise((r) => setTimeout(r, 100))
    }
    await stop(a.child)

    const py = (args: string[]) => [images.python, SCRIPT, ...args].map((x) => `'${x}'`).join(' ')
    const epoch = async (label: string, cmd: string): Promise<number> => {
      const r = await shell(label, cmd, timeoutMs * 2, true)
      if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`)
      const out = JSON.parse(r.stdout.toString()) as { files: number; bytes: number; seconds: number }
      if (out.files !== images.files || out.bytes !== images.bytes) throw new BenchError(`${label}: read ${out.files} files, ${out.bytes} bytes; expected ${images.files}, ${images.bytes}`)
      return out.files / out.seconds
    }
    const drop = async () => {
      const r = await shell('drop', py(['drop', images.root, listing]), timeoutMs, true)
      if (r.code !== 0) throw new BenchError(`dropping the page cache failed: ${r.stderr}`)
    }
    let round = 0
    const measured = await alternate(
      section,
      [
        {
          key: 'redis',
          label: 'host B: a fresh server on slow storage, blocks from Redis',
          unit: 'files/s',
          run: async () => {
            await drop()
            const store = join('/dev/shm', `cacheserv-pipe-bench-tier-${process.pid}-${round++}`)
            const b = await startServer('shared-tier host B', 'sh', ['-c', slow.wrap(serverArgs(hostB, `--host 127.0.0.1 --shm-dir '${store}'`))], 60_000)
            children.push(b)
            try {
              const url = addressOf(b.line)
              const value = await epoch('host B epoch', `ip netns exec ${hostB.serverNs} ${py(['server', url, listing])}`)
              const st = JSON.parse(await run('host B stats', ['ip', 'netns', 'exec', hostB.serverNs, process.execPath, CLIENT_BIN, '--server', url, 'stats', '--json'], timeoutMs)) as Record<string, number>
              if (st.diskReads !== 0) log(`${section}: host B read ${st.diskReads} blocks from disk (Redis hits ${st.sharedHits}, errors ${st.sharedErrors})`)
              return value
            } finally {
              await stop(b.child)
            }
          },
        },
        { key: 'slow', label: `open() from slow storage (${fmtBytes(SLOW_BPS)}/s, cold)`, unit: 'files/s', run: () => epoch('tier slow', slow.wrap(py(['local', images.root, listing, 'cold']))) },
      ],
      { rounds: rounds[1], minRounds: rounds[0], deadline: Infinity },
      (v) => v.toFixed(0),
    )
    const g = (k: string) => measured.get(k)!
    return {
      rows: [row(section, g('redis'), g('slow'), 'CacheservDataset.loader() on host B; host B\'s link to Redis unshaped'), row(section, g('slow'))],
      targets: [ratioTarget('second host\'s epoch from the shared tier ≥ 5 × slow storage', g('redis'), g('slow'), 5)],
      notes: [],
    }
  } finally {
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) await stop(c.child)
    await cluster?.stop()
    for (const l of links) await l.remove()
    slow.remove()
  }
}

function addressOf(line: string): string {
  const m = /listening on (\S+)/.exec(line)
  if (!m) throw new BenchError(`no address in ${line}`)
  return m[1]!
}

/** Run argv to completion; its stdout, or a BenchError. */
async function run(label: string, argv: string[], timeoutMs: number): Promise<string> {
  const r = await shell(label, argv.map((a) => `'${a}'`).join(' '), timeoutMs, true)
  if (r.code !== 0) throw new BenchError(`${label}: exited ${r.code}: ${r.stderr.trim()}`)
  return r.stdout.toString()
}
