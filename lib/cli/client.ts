/**
 * `cacheserv-pipe-client`: read, list, stat and manage the cache of a running server.
 * Exit 0 on success, 1 on a server or transfer error (CODE: message on
 * stderr), 2 on usage errors. Start-up time is its budget (`read x | head`
 * in a loop): it imports only the client side, parses its arguments with
 * node:util (./args.js) rather than commander, and leaves what only some
 * commands need (tar, the stats and warm display, help) to those commands.
 */
import { Writable } from 'node:stream'
import { DEFAULT_ADDRESS } from '../address.js'
import { type Client, connect } from '../client/client.js'
import { VERSION } from '../version.js'
import { parseCommandLine, type Parsed, UsageError, type Values } from './args.js'
import { CLIENT, type CommandName, type GlobalOptions, NAME } from './client-args.js'
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './values.js'
import { stdoutForSyncWrites, writeAllSync } from './write-sync.js'

/** A command's work on a connected client; required arguments are always there. */
type Action = (client: Client, args: (string | undefined)[], o: Values) => Promise<void>

const ACTIONS: Record<CommandName, Action> = {
  async read(client, [file], o) {
    // Each verified piece goes from the receive buffer to stdout, or from the server's shared memory.
    const out = stdoutForSyncWrites()
    try {
      // Into a pipe, a read longer than a pipe-full widens the pipe and splices the blocks into it (the
      // module and the native addon load only then: a small file's start-up does not pay for them).
      const pipe = out.pipe ? async () => (await import('./stdout-pipe.js')).widePipe(out.fd) : undefined
      const range = { offset: o.offset as number | undefined, length: o.length as number | undefined }
      await client.readChunks(file!, (chunk) => writeAllSync(out.fd, chunk), { ...range, sharedMemory: true, pipe })
    } catch (err) {
      // The reader went away (`| head -c 10`): that is how pipes end, not an error.
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
    } finally {
      out.close()
    }
  },

  async ls(client, [dir], o) {
    const long = o.long === true
    const entries = await client.ls(dir!, { long })
    const name = (e: (typeof entries)[number]) => (e.type === 'dir' ? `${e.name}/` : e.name)
    await print(entries.map((e) => (long ? `${e.type === 'file' ? (e.size ?? '') : '-'}\t${name(e)}` : name(e)) + '\n').join(''))
  },

  async tree(client, [dir], o) {
    const json = o.json === true
    let lines: string[] = []
    for await (const f of client.tree(dir!.replace(/^\/+|\/+$/g, ''), { suffix: o.suffix as string | undefined })) {
      lines.push(json ? JSON.stringify(f) : `${f.size}\t${f.path}`)
      // Printed a batch at a time: the first paths show before the walk ends.
      if (lines.length >= 1024) {
        await print(lines.join('\n') + '\n')
        lines = []
      }
    }
    if (lines.length > 0) await print(lines.join('\n') + '\n')
  },

  async stat(client, [file]) {
    await print(JSON.stringify(await client.stat(file!), null, 2) + '\n')
  },

  async stats(client, _, o) {
    const s = await client.stats()
    const { formatStats } = await import('./format.js')
    await print((o.json ? JSON.stringify(s, null, 2) : formatStats(s)) + '\n')
  },

  async warm(client, [path], o) {
    const started = Date.now()
    const [{ formatWarm }, { warmDisplay }] = await Promise.all([import('./format.js'), import('./warm-progress.js')])
    const display = await warmDisplay()
    try {
      const list = o.list as string | undefined
      const result = list === undefined ? await client.warm(path!, (p) => display.update(p)) : await client.warmList((await import('./path-list.js')).readPathList(list), (p) => display.update(p))
      display.update(result)
      display.stop()
      console.error(formatWarm(result, (Date.now() - started) / 1000))
    } finally {
      display.stop()
    }
  },

  async pin(client, [path]) {
    const r = await client.pin(path!)
    const { size } = await import('./format.js')
    console.error(`pinned ${r.files} files, ${size(r.bytes)}; ${r.pinnedFiles} files, ${size(r.pinnedBytes)} pinned in all`)
  },

  async unpin(client, [path]) {
    const r = await client.unpin(path ?? '')
    const { size } = await import('./format.js')
    console.error(`unpinned ${r.files} files, ${size(r.bytes)}; ${r.pinnedFiles} files, ${size(r.pinnedBytes)} pinned in all`)
  },

  async evict(client, [path]) {
    const r = await client.evict(path)
    const { size } = await import('./format.js')
    console.error(`evicted ${size(r.bytes)} in ${r.blocks} blocks${r.files === null ? '' : ` of ${r.files} files`}`)
  },

  async tar(client, [dir], o) {
    const { tarFiles } = await import('./tar-files.js')
    const files = tarFiles(client, dir!, o.list as string | undefined)
    const { writeTar } = await import('./tar.js')
    try {
      await writeTar(client, files, stdoutSink(), { manifest: o.noManifest !== true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err
    }
  },

  async write(client, [file]) {
    try {
      await client.write(file!, process.stdin)
    } finally {
      // A failed write leaves stdin unread; open, it would keep the process alive.
      process.stdin.destroy()
    }
  },
}

/**
 * process.stdout, created on first use: on a pipe that costs ~2 ms of
 * start-up, and `read` writes to fd 1 without it. Its errors (EPIPE) reach
 * the write callbacks; without a listener they would be thrown.
 */
function stdout(): NodeJS.WriteStream {
  if (process.stdout.listenerCount('error') === 0) process.stdout.on('error', () => {})
  return process.stdout
}

/**
 * Write text to stdout and wait until it is out: a failure (`> /dev/full`)
 * is an error (exit 1), a reader that went away (EPIPE) is not.
 */
function print(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stdout().write(text, (err) => (err && (err as NodeJS.ErrnoException).code !== 'EPIPE' ? reject(err) : resolve()))
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
      stdout().write(chunk, cb)
    },
  })
}

async function help(parsed: Extract<Parsed, { kind: 'help' }>): Promise<void> {
  const { renderHelp } = await import('./help.js')
  const out = parsed.error ? process.stderr : stdout()
  out.write(renderHelp(CLIENT, parsed.command, (out.isTTY && out.columns) || 80))
  process.exitCode = parsed.error ? EXIT_USAGE : EXIT_OK
}

export async function main(argv: string[]): Promise<void> {
  let parsed: Parsed
  try {
    parsed = parseCommandLine(CLIENT, argv.slice(2))
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    console.error(`error: ${err.message}\n(add --help for usage)`)
    process.exitCode = EXIT_USAGE
    return
  }
  if (parsed.kind === 'help') return help(parsed)
  if (parsed.kind === 'version') {
    stdout().write(`${VERSION}\n`)
    return
  }
  if (parsed.command.name === 'warm' && parsed.options.list !== undefined && parsed.args[0]) {
    console.error('error: warm takes a PATH or --list FILE, not both\n(add --help for usage)')
    process.exitCode = EXIT_USAGE
    return
  }
  const global = parsed.global as GlobalOptions
  let client: Client | null = null
  try {
    client = await connect(global.server ?? (process.env.CACHESERV_SERVER || DEFAULT_ADDRESS), { faults: global.injectFaults, token: global.token })
    await ACTIONS[parsed.command.name as CommandName](client, parsed.args, parsed.options)
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
