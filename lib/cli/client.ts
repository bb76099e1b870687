/**
 * `cacheserv-pipe-client`: read, ls and stat against a running server.
 * Exit 0 on success, 1 on a server or transfer error (CODE: message on
 * stderr), 2 on usage errors. Imports only the client side, to start fast.
 */
import { Command } from 'commander'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { DEFAULT_ADDRESS, parseAddress } from '../address.js'
import { type Client, connect } from '../client/client.js'
import type { CorruptMode, CorruptOptions } from '../stages/corrupt.js'
import { readFile } from 'node:fs/promises'
import { listTree, type RemoteFile } from '../client/tree.js'
import { error } from '../errors.js'
import { formatStats, formatWarm, size } from './format.js'
import { warmDisplay } from './warm-progress.js'
import { VERSION } from '../version.js'
import { countOption, EXIT_FAILURE, EXIT_USAGE, usageExits } from './options.js'
import { InvalidArgumentError } from 'commander'

const NAME = 'cacheserv-pipe-client'

const FAULT_MODES = ['flip', 'drop', 'duplicate', 'garbage', 'mixed']

function faultsOption(value: string): CorruptOptions {
  const [rate, mode = 'mixed', seed = '1'] = value.split(':')
  const r = Number(rate)
  if (!(r >= 0 && r <= 1) || !FAULT_MODES.includes(mode) || !/^\d+$/.test(seed)) {
    throw new InvalidArgumentError(`expected RATE[:MODE[:SEED]] with RATE from 0 to 1 and MODE one of ${FAULT_MODES.join(', ')}, got ${JSON.stringify(value)}`)
  }
  return { rate: r, mode: mode as CorruptMode, seed: Number(seed) }
}

function addressOption(value: string): string {
  try {
    parseAddress(value)
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
  return value
}

function program(run: (fn: (client: Client) => Promise<void>) => Promise<void>): Command {
  const cli = new Command(NAME)
    .description('Read files from a cacheserv-pipe server, and steer its cache.')
    .version(VERSION)
    .option('--server <addr>', `server address: tcp://HOST:PORT, HOST:PORT or unix:/path (env CACHESERV_SERVER, else ${DEFAULT_ADDRESS})`, addressOption)
    .option('--token <token>', 'token for a server that needs one (env CACHESERV_TOKEN)')
    .option('--inject-faults <rate[:mode[:seed]]>', 'damage received bytes on purpose (faults per byte; mode flip|drop|duplicate|garbage|mixed) to watch the NACK path repair them; prints a summary on stderr', faultsOption)
    .showHelpAfterError('(add --help for usage)')

  cli
    .command('read')
    .description('write exactly the bytes of FILE (or a range of it) to stdout')
    .argument('<file>', 'path relative to the served root')
    .option('--offset <n>', 'first byte to read', countOption)
    .option('--length <n>', 'bytes to read (clipped at the end of the file)', countOption)
    .action((file: string, o: { offset?: number; length?: number }) =>
      run(async (client) => {
        try {
          await pipeline(client.read(file, { offset: o.offset, length: o.length }), stdoutSink())
        } catch (err) {
          // The reader went away (`| head -c 10`): that is how pipes end, not an error.
          if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
        }
      }),
    )

  cli
    .command('ls')
    .description('list a directory, one entry a line, directories ending in /')
    .argument('[dir]', 'directory relative to the served root', '')
    .action((dir: string) =>
      run(async (client) => {
        const entries = await client.ls(dir)
        process.stdout.write(entries.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name) + '\n').join(''))
      }),
    )

  cli
    .command('stat')
    .description('print size, mtime and cache state of FILE as JSON')
    .argument('<file>', 'path relative to the served root')
    .action((file: string) =>
      run(async (client) => {
        process.stdout.write(JSON.stringify(await client.stat(file), null, 2) + '\n')
      }),
    )

  cli
    .command('stats')
    .description("print the server's counters: cache use, hits and misses, bytes served, NACKs")
    .option('--json', 'print JSON instead')
    .action((o: { json?: boolean }) =>
      run(async (client) => {
        const s = await client.stats()
        process.stdout.write((o.json ? JSON.stringify(s, null, 2) : formatStats(s)) + '\n')
      }),
    )

  cli
    .command('warm')
    .description('load a file or a whole tree into the cache (a progress bar on a terminal, a summary line at the end)')
    .argument('[path]', 'file or directory relative to the served root', '')
    .action((path: string) =>
      run(async (client) => {
        const started = Date.now()
        const display = await warmDisplay()
        try {
          const result = await client.warm(path, (p) => display.update(p))
          display.update(result)
          display.stop()
          console.error(formatWarm(result, (Date.now() - started) / 1000))
        } finally {
          display.stop()
        }
      }),
    )

  cli
    .command('evict')
    .description('drop a file or a tree from the cache; without a path, everything')
    .argument('[path]', 'file or directory relative to the served root')
    .action((path?: string) =>
      run(async (client) => {
        const r = await client.evict(path)
        console.error(`evicted ${size(r.bytes)} in ${r.blocks} blocks${r.files === null ? '' : ` of ${r.files} files`}`)
      }),
    )

  cli
    .command('tar')
    .description('write files as a POSIX tar stream to stdout, in order (a directory tree, or the paths listed in a file)')
    .argument('[dir]', 'directory relative to the served root (default: everything)', '')
    .option('--list <file>', 'read the paths to archive from this file, one a line ("-" for stdin)')
    .action((dir: string, o: { list?: string }) =>
      run(async (client) => {
        const files = o.list === undefined ? await listTree(client, dir) : await listed(client, o.list)
        // Loaded only here: the other commands must start fast.
        const { writeTar } = await import('./tar.js')
        try {
          await writeTar(client, files, stdoutSink())
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
        }
      }),
    )

  cli
    .command('write')
    .description('write stdin to FILE on the server, atomically (the server must run with --writable)')
    .argument('<file>', 'path relative to the served root; its directory must exist')
    .action((file: string) =>
      run(async (client) => {
        await client.write(file, process.stdin)
      }),
    )
  return cli
}

/** Paths listed in a file (or stdin), one a line, with their sizes from the server (stat, pipelined). */
async function listed(client: Client, list: string): Promise<RemoteFile[]> {
  const text = list === '-' ? await new Promise<string>((resolve, reject) => {
    let s = ''
    process.stdin.setEncoding('utf8').on('data', (c: string) => (s += c)).on('end', () => resolve(s)).on('error', reject)
  }) : await readFile(list, 'utf8')
  const paths = text.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  const sizes = await Promise.all(paths.map((p) => client.stat(p)))
  return paths.map((path, i) => {
    if (sizes[i].type !== 'file') throw error('EISDIR', `${path} in the list is not a file`)
    return { path, size: sizes[i].size }
  })
}

/**
 * stdout as a pipeline destination that a failed read cannot destroy (so the
 * error is reported, not thrown from stdout), with stdout's own errors (EPIPE)
 * surfacing through the write callback.
 */
function stdoutSink(): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, cb) {
      process.stdout.write(chunk, cb)
    },
  })
}

export async function main(argv: string[]): Promise<void> {
  // Reported through the write callbacks above; without a listener it would be thrown.
  process.stdout.on('error', () => {})
  let global: { server?: string; injectFaults?: CorruptOptions; token?: string } = {}
  const run = async (fn: (client: Client) => Promise<void>) => {
    let client: Client | null = null
    try {
      client = await connect(global.server ?? process.env.CACHESERV_SERVER ?? DEFAULT_ADDRESS, { faults: global.injectFaults, token: global.token })
      await fn(client)
    } catch (err) {
      const e = err as Error & { code?: string }
      console.error(`${NAME}: ${e.code ? `${e.code}: ` : ''}${e.message}`)
      process.exitCode = EXIT_FAILURE
    } finally {
      if (client && global.injectFaults) {
        const s = client.counters()
        console.error(`${NAME}: injected ${s.injected} faults; sent ${s.nacks} NACKs; lost the frame boundary ${s.lostSync} times; ${s.timeouts} progress timeouts`)
      }
      await client?.close()
    }
  }
  const cli = usageExits(program(run))
  cli.hook('preAction', (cmd) => {
    global = cmd.opts()
  })
  if (argv.length <= 2) {
    cli.outputHelp({ error: true })
    process.exit(EXIT_USAGE)
  }
  await cli.parseAsync(argv)
}
