/**
 * A real Redis Cluster (or one instance) on loopback ports, made of Debian's
 * `redis-server` processes started here and stopped by their PIDs. The
 * cluster is formed the way a user forms one: `redis-cli --cluster create`.
 * Used by the specs and by the bench.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { Redis } from 'ioredis'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface RedisNodeProcess {
  host: string
  port: number
  child: ChildProcess
  url: string
}

export interface RedisCluster {
  nodes: RedisNodeProcess[]
  /** The seed list for --redis: every node's URL, comma-separated. */
  urls: string
  /** SIGKILL node `i` (a master dying), and wait for it to be gone. */
  kill(i: number): Promise<void>
  /** Stop every node still running, and remove their files. */
  stop(): Promise<void>
}

export interface RedisClusterOptions {
  /** Masters; 1 with `cluster: false` is a single instance. Default 3. */
  masters?: number
  /** Cluster mode. Default true. */
  cluster?: boolean
  host?: string
  /** Per node. Default 256mb. */
  maxmemory?: string
  /** maxmemory-policy. Default allkeys-random (see README, "Several machines"). */
  policy?: string
  /** A port to use for a single instance (e.g. one a server was told about before it was up). */
  port?: number
  /** requirepass: clients must give this password (single instance only). */
  password?: string
  /** Run each node under this prefix (e.g. ['ip', 'netns', 'exec', 'NAME']). */
  wrap?: string[]
}

/** Whether redis-server and redis-cli are installed (.ci/run installs them; the specs skip without). */
export function redisInstalled(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    execFileSync('redis-cli', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

export const NO_REDIS = 'redis-server is not installed (apt-get install redis-server)'

export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const clustered = opts.cluster ?? true
  const count = clustered ? (opts.masters ?? 3) : 1
  const host = opts.host ?? '127.0.0.1'
  const dir = mkdtempSync(join(tmpdir(), 'cacheserv-redis-'))
  const nodes: RedisNodeProcess[] = []
  // A process that exits without stop() (a failed test run, the bench's Ctrl-C) still leaves no Redis running.
  const killNow = () => {
    for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', killNow)
  const stop = async () => {
    process.off('exit', killNow)
    await Promise.all(nodes.map((n) => stopChild(n.child)))
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    for (let i = 0; i < count; i++) {
      const port = opts.port ?? (await freePortPair(host))
      const args = [
        '--port', String(port), '--bind', host, '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no',
        '--maxmemory', opts.maxmemory ?? '256mb', '--maxmemory-policy', opts.policy ?? 'allkeys-random', '--logfile', join(dir, `${port}.log`),
        ...(opts.password ? ['--requirepass', opts.password] : []),
        ...(clustered ? ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-require-full-coverage', 'no', '--cluster-node-timeout', '2000'] : []),
      ]
      const [cmd, ...pre] = [...(opts.wrap ?? []), 'redis-server']
      const child = spawn(cmd!, [...pre, ...args], { stdio: 'ignore' })
      nodes.push({ host, port, child, url: `redis://${host}:${port}` })
    }
    await Promise.all(nodes.map((n) => waitForPing(n.host, n.port, 10_000, opts.password)))
    if (clustered) {
      const [cmd, ...pre] = [...(opts.wrap ?? []), 'redis-cli']
      execFileSync(cmd!, [...pre, '--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'ignore', timeout: 20_000 })
      await waitForClusterOk(nodes, 20_000)
    }
  } catch (err) {
    await stop()
    throw err
  }
  return {
    nodes,
    urls: nodes.map((n) => n.url).join(','),
    kill: async (i) => {
      const child = nodes[i]!.child
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGKILL')
      await once(child, 'exit')
    },
    stop,
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await exited
  clearTimeout(timer)
}

/** A port free for the node and for its cluster bus (port + 10000). */
async function freePortPair(host: string): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 20000 + Math.floor(Math.random() * 35000)
    if ((await portFree(host, port)) && (await portFree(host, port + 10000))) return port
  }
  throw new Error('no free port pair for a Redis node')
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.once('error', () => resolve(false))
    s.listen(port, host, () => s.close(() => resolve(true)))
  })
}

/** One command to one node on a connection of its own (ioredis), its reply as a string; rejects on any failure or after `timeoutMs`. */
async function nodeCommand(host: string, port: number, args: [string, ...string[]], timeoutMs = 2000, password?: string): Promise<string> {
  const conn = new Redis({ host, port, password, lazyConnect: true, enableOfflineQueue: false, connectTimeout: timeoutMs, commandTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null })
  conn.on('error', () => {})
  try {
    await conn.connect()
    return String(await conn.call(...args))
  } finally {
    conn.disconnect()
  }
}

async function waitForPing(host: string, port: number, ms: number, password?: string): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const pong = await nodeCommand(host, port, ['PING'], 500, password).catch(() => '')
    if (pong === 'PONG') return
    if (Date.now() > deadline) throw new Error(`redis-server on ${host}:${port} did not answer PING`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

async function waitForClusterOk(nodes: RedisNodeProcess[], ms: number): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const infos = await Promise.all(nodes.map((n) => nodeCommand(n.host, n.port, ['CLUSTER', 'INFO']).catch(() => '')))
    if (infos.every((i) => i.includes('cluster_state:ok'))) return
    if (Date.now() > deadline) throw new Error('the Redis cluster did not reach cluster_state:ok')
    await new Promise((r) => setTimeout(r, 100))
  }
}
