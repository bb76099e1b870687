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
    .description('Read files from a cacheserv-pipe server.')
    .version(VERSION)
    .option('--server <addr>', `server address: tcp://HOST:PORT, HOST:PORT or unix:/path (env CACHESERV_SERVER, else ${DEFAULT_ADDRESS})`, addressOption)
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
  return cli
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
  let global: { server?: string; injectFaults?: CorruptOptions } = {}
  const run = async (fn: (client: Client) => Promise<void>) => {
    let client: Client | null = null
    try {
      client = await connect(global.server ?? process.env.CACHESERV_SERVER ?? DEFAULT_ADDRESS, { faults: global.injectFaults })
      await fn(client)
    } catch (err) {
      const e = err as Error & { code?: string }
      console.error(`${NAME}: ${e.code ? `${e.code}: ` : ''}${e.message}`)
      process.exitCode = EXIT_FAILURE
    } finally {
      if (client && global.injectFaults) {
        const s = client.stats()
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
