/** `cacheserv-pipe`: serve a directory from RAM until SIGINT or SIGTERM. */
import { realpathSync } from 'node:fs'
import { defaultStoreDir } from '../server/open-store.js'
import { Command, Option } from 'commander'
import { filesize } from 'filesize'
import { DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_REQUEST, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../protocol/constants.js'
import { CacheServer } from '../server/server.js'
import {
  DEFAULT_AUTH_BACKOFF,
  DEFAULT_AUTH_TIMEOUT,
  DEFAULT_CACHE_SIZE,
  DEFAULT_GRACE,
  DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_REDIS_PREFIX,
  DEFAULT_REDIS_TIMEOUT,
  DEFAULT_REQUEST_TIMEOUT,
} from '../server/server-options.js'
import { VERSION } from '../version.js'
import { parseAddress } from '../address.js'
import { DEFAULT_POLICY } from '../cache/block-cache.js'
import { DEFAULT_SETTLE_MS } from '../fs/settle.js'
import { POLICIES, type PolicyName } from '../cache/policy.js'
import { formatWarm } from './format.js'
import { warmDisplay } from './warm-progress.js'
import { formatSize } from './values.js'
import type { WarmProgress } from '../commands/warm.js'
import { countOption, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, modeWithDefault, portOption, secondsOption, sizeOption, sizeWithDefault, usageExits } from './options.js'

/** Without a terminal, --warm says how far it has got this often. */
const WARM_LINE_MS = 5000

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])
/** Below this, the server warns that the token can be guessed. */
const MIN_TOKEN_LENGTH = 16

function program(): Command {
  return new Command('cacheserv-pipe')
    .description('Keep the most recently used bytes of a dataset directory in RAM and serve them over a socket.')
    .version(VERSION)
    .requiredOption('--root <dir>', 'directory to serve (paths never leave it)')
    .option('--host <host>', 'address to listen on; anything but loopback needs --token (or --insecure-no-auth)', '127.0.0.1')
    .option('--port <n>', 'TCP port; 0 picks a free one', portOption, 7070)
    .option('--socket <path>', 'listen on a unix socket instead of TCP')
    .addOption(sizeWithDefault('--cache-size <size>', 'RAM for cached blocks, e.g. 512MiB, 2G', DEFAULT_CACHE_SIZE))
    .addOption(sizeWithDefault('--page-size <size>', `payload bytes per frame (${formatSize(MIN_PAGE_SIZE)}–${formatSize(MAX_PAGE_SIZE)})`, DEFAULT_PAGE_SIZE))
    .addOption(new Option('--checksum <algorithm>', 'payload checksum of every page').choices(['crc32', 'md5']).default('crc32'))
    .addOption(new Option('--policy <name>', 'cache eviction: tinylfu keeps a hit ratio near cache/dataset over repeated epochs; lru is plain LRU').choices([...POLICIES]).default(DEFAULT_POLICY))
    .option('--writable', 'allow clients to write files (atomically, inside the root); read-only otherwise')
    .option('--http <host:port>', 'also serve the root over HTTP (GET/HEAD, ranges, directory pages, /-/metrics); port 0 picks a free one; anything but loopback needs --token (or --insecure-no-auth)')
    .option('--shm-dir <dir>', 'keep cached blocks in this shared-memory (tmpfs) directory, private to this user; a server restarted after a crash adopts the blocks still valid in it (default: one under /dev/shm named for the root, or the heap when that cannot be had)')
    .option('--no-shm', 'keep cached blocks on the heap: nothing in shared memory, and same-host clients read over the socket')
    .option('--no-short-circuit', 'do not let clients on this host read cached blocks from shared memory themselves; they read over the socket')
    .option('--no-meta-cache', 'do not keep directory listings in RAM (ls, tree and warm then read every directory each time)')
    .option('--redis <urls>', 'share blocks with other hosts\' servers through Redis: seed nodes as redis://HOST:PORT, comma-separated; a cluster is found and used as one (see README, "Several machines")')
    .option('--redis-prefix <prefix>', 'put before every key in Redis, so datasets can share one cluster', DEFAULT_REDIS_PREFIX)
    .option('--redis-timeout <seconds>', 'longest wait for a Redis lookup or store before the disk is read instead', secondsOption, DEFAULT_REDIS_TIMEOUT / 1000)
    .option('--no-redis-inode', 'leave inode numbers out of the keys in Redis, for filesystems that number inodes each host its own way (FUSE bucket mounts); see README, "Several machines"')
    .option('--warm <path>', 'load this file or tree into the cache right after starting ("" or . for everything)')
    .option('--pin <path>', 'pin this file or tree in the cache before serving (repeatable): kept whatever the policy does; more than fits is an error', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--token <token>', 'shared secret every client must present first (env CACHESERV_TOKEN; the env keeps it out of `ps`)')
    .option('--insecure-no-auth', 'allow a non-loopback --host without a token (trusted networks only)')
    .addOption(modeWithDefault('--socket-mode <octal>', 'permissions of the --socket file', 0o600))
    .option('--max-connections <n>', 'connections served at once; more get EBUSY', countOption, DEFAULT_MAX_CONNECTIONS)
    .option('--max-in-flight <n>', 'requests one connection may run at once; more wait unread', countOption, DEFAULT_MAX_IN_FLIGHT)
    .option('--max-buffered <size>', 'file data held outside the cache for responses on their way out (disk reads, blocks the cache does not keep); reads wait for room, and clients that stopped reading are closed to make it (default 1/64 of --cache-size, 4–16 MiB)', sizeOption)
    .addOption(sizeWithDefault('--max-request <size>', 'longest request line; a longer one closes the connection (ETOOBIG)', DEFAULT_MAX_REQUEST))
    .option('--idle-timeout <seconds>', 'close a connection that for this long neither sent a complete request nor read any answer (idle, or a frozen reader); 0 never', secondsOption, DEFAULT_IDLE_TIMEOUT / 1000)
    .option('--request-timeout <seconds>', 'close a connection whose request line is not whole this long after its first byte, or that sends no request this long after connecting (ETIMEDOUT); 0 never', secondsOption, DEFAULT_REQUEST_TIMEOUT / 1000)
    .option('--auth-timeout <seconds>', 'with a token: close a connection not authenticated this long after connecting (EAUTH); 0 never', secondsOption, DEFAULT_AUTH_TIMEOUT / 1000)
    .option('--auth-backoff <seconds>', 'with a token: answer a wrong token only after this long, doubling with each further failure from the same address (up to 32 times); 0 no throttling', secondsOption, DEFAULT_AUTH_BACKOFF / 1000)
    .option('--settle <seconds>', 'a file changed more recently than this may still be being written: its reads wait until it has been left alone this long, and only then is it cached', secondsOption, DEFAULT_SETTLE_MS / 1000)
    .option('--grace <seconds>', 'on SIGINT/SIGTERM, let running requests finish for up to this long; a second signal exits at once', secondsOption, DEFAULT_GRACE / 1000)
    .addHelpText('after', '\nExample:\n  cacheserv-pipe --root data --cache-size 8G\n  DEBUG=cacheserv:* cacheserv-pipe --root data   # trace every stage')
}

export async function main(argv: string[]): Promise<void> {
  const cli = usageExits(program())
  cli.parse(argv)
  const o = cli.opts<{
    root: string
    host: string
    port: number
    socket?: string
    cacheSize: number
    pageSize: number
    checksum: 'crc32' | 'md5'
    insecureNoAuth?: boolean
    token?: string
    socketMode: number
    maxConnections: number
    maxInFlight: number
    maxRequest: number
    maxBuffered?: number
    idleTimeout: number
    settle: number
    requestTimeout: number
    authTimeout: number
    authBackoff: number
    grace: number
    writable?: boolean
    warm?: string
    pin: string[]
    http?: string
    policy: PolicyName
    shmDir?: string
    shm: boolean
    shortCircuit: boolean
    metaCache: boolean
    redis?: string
    redisPrefix: string
    redisTimeout: number
    redisInode: boolean
  }>()
  if (o.token === '') {
    // `--token "$TOKEN"` with TOKEN unset: an empty secret would let anyone in.
    console.error('cacheserv-pipe: --token is empty; give a secret, or leave the option out')
    process.exit(EXIT_USAGE)
  }
  const token = o.token ?? (process.env.CACHESERV_TOKEN || undefined)
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    // Wrong tokens are answered slowly, but guesses sent in parallel are not: length is the defence.
    console.error(`cacheserv-pipe: warning: a token shorter than ${MIN_TOKEN_LENGTH} characters can be guessed; make one with: openssl rand -hex 16`)
  }
  if (!o.socket && !LOOPBACK.has(o.host) && token === undefined && !o.insecureNoAuth) {
    console.error(
      `cacheserv-pipe: refusing to listen on ${o.host} without a token: set CACHESERV_TOKEN (or --token), or add --insecure-no-auth on a trusted network`,
    )
    process.exit(EXIT_USAGE)
  }
  if (o.http !== undefined) {
    let httpHost: string
    try {
      const a = parseAddress(o.http.replace(/^http:\/\//i, '').replace(/\/$/, ''))
      if (a.kind !== 'tcp') throw new Error('not TCP')
      httpHost = a.host
    } catch {
      console.error(`cacheserv-pipe: --http ${o.http}: give HOST:PORT (port 0 picks a free one)`)
      process.exit(EXIT_USAGE)
    }
    if (!LOOPBACK.has(httpHost) && token === undefined && !o.insecureNoAuth) {
      console.error(`cacheserv-pipe: refusing to serve HTTP on ${httpHost} without a token: set CACHESERV_TOKEN (or --token), or add --insecure-no-auth on a trusted network`)
      process.exit(EXIT_USAGE)
    }
  }
  if (o.maxConnections < 1 || o.maxInFlight < 1) {
    console.error('cacheserv-pipe: --max-connections and --max-in-flight must be at least 1')
    process.exit(EXIT_USAGE)
  }
  if (o.redis !== undefined) {
    // Loaded only with --redis: a server without it starts on fewer modules.
    const { parseRedisNodes } = await import('../tier/redis-nodes.js')
    try {
      parseRedisNodes(o.redis)
    } catch (err) {
      console.error(`cacheserv-pipe: --redis ${o.redis}: ${(err as Error).message}`)
      process.exit(EXIT_USAGE)
    }
    if (o.redisTimeout <= 0) {
      console.error('cacheserv-pipe: --redis-timeout must be more than 0')
      process.exit(EXIT_USAGE)
    }
  }
  if (o.pageSize < MIN_PAGE_SIZE || o.pageSize > MAX_PAGE_SIZE) {
    console.error(`cacheserv-pipe: --page-size must be from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE} bytes`)
    process.exit(EXIT_USAGE)
  }

  let server: CacheServer | undefined
  let url: string
  try {
    server = await CacheServer.create({ root: o.root, cacheSize: o.cacheSize, pageSize: o.pageSize, checksum: o.checksum,
      writable: o.writable,
      policy: o.policy,
      token,
      socketMode: o.socketMode,
      maxConnections: o.maxConnections,
      maxInFlight: o.maxInFlight,
      maxRequest: o.maxRequest,
      maxBuffered: o.maxBuffered,
      idleTimeout: o.idleTimeout * 1000,
      settle: o.settle * 1000,
      requestTimeout: o.requestTimeout * 1000,
      authTimeout: o.authTimeout * 1000,
      authBackoff: o.authBackoff * 1000,
      ...storeOptions(o),
      shortCircuit: o.shortCircuit,
      metaCache: o.metaCache,
      redis: o.redis,
      redisPrefix: o.redisPrefix,
      redisTimeout: o.redisTimeout * 1000,
      redisInode: o.redisInode,
    })
    for (const w of server.warnings) console.error(`cacheserv-pipe: warning: ${w}`)
    const { adopted } = server
    if (adopted.blocks > 0 || adopted.dropped > 0) {
      console.error(`cacheserv-pipe: adopted ${adopted.blocks} cached blocks (${filesize(adopted.bytes, { standard: 'iec' })}) left in ${server.stats().shm?.dir}${adopted.dropped ? `; dropped ${adopted.dropped} that failed their checksum or did not fit` : ''}`)
    }
    for (const p of o.pin) {
      const r = await server.pins.pin(p).catch((err: Error & { code?: string }) => {
        throw new Error(`--pin ${p}: ${err.code ? `${err.code}: ` : ''}${err.message}`)
      })
      console.error(`cacheserv-pipe: pinned ${r.files} files, ${filesize(r.bytes, { standard: 'iec' })}, under ${p || 'the root'}`)
    }
    url = await server.listen(o.socket ? { kind: 'unix', path: o.socket } : { kind: 'tcp', host: o.host, port: o.port })
    if (o.http !== undefined) await server.listenHttp(o.http)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    console.error(`cacheserv-pipe: ${e.code ? `${e.code}: ` : ''}${e.message}`)
    // A server that will not serve leaves nothing behind: its store, its socket file, its Redis connection.
    await server?.close().catch(() => {})
    process.exit(EXIT_FAILURE)
  }
  server.on('error', (err: Error) => console.error(`cacheserv-pipe: ${err.message}`))
  server.on('warning', (message: string) => console.error(`cacheserv-pipe: warning: ${message}`))
  const size = (n: number) => filesize(n, { standard: 'iec' })
  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      console.error(`cacheserv-pipe: ${signal} again, exiting now`)
      process.exit(EXIT_FAILURE)
    }
    stopping = true
    console.error(`cacheserv-pipe: ${signal}, closing ${url} (running requests get ${o.grace} s to finish; send it again to exit now)`)
    server.close({ grace: o.grace * 1000 }).then(() => process.exit(EXIT_OK), (err: Error) => {
      console.error(`cacheserv-pipe: error while closing: ${err.message}`)
      process.exit(EXIT_FAILURE)
    })
  }
  // Installed before the 'listening' line: whoever reads it may signal at once.
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  console.log(
    `cacheserv-pipe ${VERSION} listening on ${url} (root ${server.root}, cache ${size(o.cacheSize)}${server.stats().shm ? ' in shared memory' : ''}, pages ${size(o.pageSize)}, ${o.checksum}, ${o.policy}${o.writable ? ', writable' : ''})`,
  )
  if (o.http !== undefined) console.log(`cacheserv-pipe ${VERSION} listening on ${server.httpUrl} (the same root over HTTP; metrics at /-/metrics)`)
  if (o.redis !== undefined) reportShared(server, o.redis)
  if (o.warm !== undefined) warmAtStart(server, o.warm, o.cacheSize)
}

/**
 * --warm: serving starts at once and warming runs beside it, with a progress
 * bar on a terminal or a line every few seconds otherwise, and a warning
 * when the tree is larger than the cache (so repeated epochs will read some
 * of it from disk).
 */
async function warmAtStart(server: CacheServer, path: string, cacheSize: number): Promise<void> {
  const started = Date.now()
  const tty = process.stderr.isTTY
  const display = await warmDisplay()
  let lastLine = started
  let warned = false
  const warnIfTooBig = (p: WarmProgress) => {
    if (warned || p.totalBytes <= cacheSize) return
    warned = true
    console.error(`cacheserv-pipe: warning: ${path || 'the root'} holds more than the ${filesize(cacheSize, { standard: 'iec' })} cache; raise --cache-size to keep all of it in RAM`)
  }
  const onProgress = (p: WarmProgress) => {
    if (!tty) warnIfTooBig(p) // on a terminal, after the bar
    display.update(p)
    if (!tty && Date.now() - lastLine >= WARM_LINE_MS) {
      lastLine = Date.now()
      console.error(`cacheserv-pipe: warming: ${formatWarm(p, (Date.now() - started) / 1000)}`)
    }
  }
  try {
    const w = await server.warm(path, onProgress)
    display.stop()
    warnIfTooBig(w)
    console.error(`cacheserv-pipe: ${formatWarm(w, (Date.now() - started) / 1000)}`)
  } catch (err) {
    display.stop()
    const e = err as Error & { code?: string }
    console.error(`cacheserv-pipe: warm ${path}: ${e.code ? `${e.code}: ` : ''}${e.message}`)
  }

}

/** Say whether Redis answered at start; without it blocks come from disk until it does (the breaker retries). */
async function reportShared(server: CacheServer, redis: string): Promise<void> {
  if (await server.sharedReady) console.error(`cacheserv-pipe: sharing blocks through Redis at ${redis} (prefix ${server.sharedPrefix})`)
  else console.error(`cacheserv-pipe: warning: Redis at ${redis} does not answer; blocks come from disk until it does (retried every second)`)
}

/** --no-shm: the heap; --shm-dir: that store or no start; neither: the root's own store under /dev/shm, or the heap with a warning. */
function storeOptions(o: { root: string; shm: boolean; shmDir?: string }): { shmDir?: string | false; shmOptional?: boolean } {
  if (!o.shm) return { shmDir: false }
  if (o.shmDir !== undefined) return { shmDir: o.shmDir, shmOptional: false }
  try {
    return { shmDir: defaultStoreDir(realpathSync(o.root)), shmOptional: true }
  } catch {
    // The root is not there: create() says so.
    return { shmDir: false }
  }
}
