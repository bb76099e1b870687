/** `cacheserv-pipe`: serve a directory from RAM until SIGINT or SIGTERM. */
import { Command, Option } from 'commander'
import { filesize } from 'filesize'
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../protocol/constants.js'
import { CacheServer, DEFAULT_CACHE_SIZE } from '../server/server.js'
import { VERSION } from '../version.js'
import { DEFAULT_POLICY } from '../cache/block-cache.js'
import { POLICIES, type PolicyName } from '../cache/policy.js'
import { formatWarm } from './format.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, portOption, sizeOption, usageExits } from './options.js'

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1'])

function program(): Command {
  return new Command('cacheserv-pipe')
    .description('Keep the most recently used bytes of a dataset directory in RAM and serve them over a socket.')
    .version(VERSION)
    .requiredOption('--root <dir>', 'directory to serve (paths never leave it)')
    .option('--host <host>', 'address to listen on (loopback unless --insecure-no-auth)', '127.0.0.1')
    .option('--port <n>', 'TCP port; 0 picks a free one', portOption, 7070)
    .option('--socket <path>', 'listen on a unix socket instead of TCP')
    .option('--cache-size <size>', 'RAM for cached blocks, e.g. 512MiB, 2G', sizeOption, DEFAULT_CACHE_SIZE)
    .option('--page-size <size>', `payload bytes per frame (${filesize(MIN_PAGE_SIZE, { standard: 'iec' })}–${filesize(MAX_PAGE_SIZE, { standard: 'iec' })})`, sizeOption, DEFAULT_PAGE_SIZE)
    .addOption(new Option('--checksum <algorithm>', 'payload checksum of every page').choices(['crc32', 'md5']).default('crc32'))
    .addOption(new Option('--policy <name>', 'cache eviction: tinylfu keeps a hit ratio near cache/dataset over repeated epochs; lru is plain LRU').choices([...POLICIES]).default(DEFAULT_POLICY))
    .option('--writable', 'allow clients to write files (atomically, inside the root); read-only otherwise')
    .option('--warm <path>', 'load this file or tree into the cache right after starting ("" or . for everything)')
    .option('--insecure-no-auth', 'allow a non-loopback --host (no authentication exists yet: trusted networks only)')
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
    writable?: boolean
    warm?: string
    policy: PolicyName
  }>()
  if (!o.socket && !LOOPBACK.has(o.host) && !o.insecureNoAuth) {
    console.error(`cacheserv-pipe: refusing to listen on ${o.host}: only loopback is safe without authentication; add --insecure-no-auth on a trusted network`)
    process.exit(EXIT_USAGE)
  }
  if (o.pageSize < MIN_PAGE_SIZE || o.pageSize > MAX_PAGE_SIZE) {
    console.error(`cacheserv-pipe: --page-size must be from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE} bytes`)
    process.exit(EXIT_USAGE)
  }

  let server: CacheServer
  let url: string
  try {
    server = await CacheServer.create({ root: o.root, cacheSize: o.cacheSize, pageSize: o.pageSize, checksum: o.checksum, writable: o.writable, policy: o.policy })
    url = await server.listen(o.socket ? { kind: 'unix', path: o.socket } : { kind: 'tcp', host: o.host, port: o.port })
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    const what = e.code === 'ENOENT' || e.code === 'ENOTDIR' ? `root ${o.root} is not a directory` : e.message
    console.error(`cacheserv-pipe: ${e.code ? `${e.code}: ` : ''}${what}`)
    process.exit(EXIT_FAILURE)
  }
  server.on('error', (err: Error) => console.error(`cacheserv-pipe: ${err.message}`))
  const size = (n: number) => filesize(n, { standard: 'iec' })
  console.log(
    `cacheserv-pipe ${VERSION} listening on ${url} (root ${server.root}, cache ${size(o.cacheSize)}, pages ${size(o.pageSize)}, ${o.checksum}, ${o.policy}${o.writable ? ', writable' : ''})`,
  )
  if (o.warm !== undefined) {
    // Serving starts at once; warming runs beside it.
    const started = Date.now()
    server.warm(o.warm).then(
      (w) => console.error(`cacheserv-pipe: ${formatWarm(w, (Date.now() - started) / 1000)}`),
      (err: Error & { code?: string }) => console.error(`cacheserv-pipe: warm ${o.warm}: ${err.code ? `${err.code}: ` : ''}${err.message}`),
    )
  }

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      console.error(`cacheserv-pipe: ${signal} again, exiting now`)
      process.exit(EXIT_FAILURE)
    }
    stopping = true
    console.error(`cacheserv-pipe: ${signal}, closing ${url}`)
    server.close().then(() => process.exit(EXIT_OK), (err: Error) => {
      console.error(`cacheserv-pipe: error while closing: ${err.message}`)
      process.exit(EXIT_FAILURE)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}
