/** Run the real CLIs as child processes, as a user would. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'

export const SERVER_BIN = fileURLToPath(new URL('../../bin/cacheserv-pipe.js', import.meta.url))
export const CLIENT_BIN = fileURLToPath(new URL('../../bin/cacheserv-pipe-client.cjs', import.meta.url))

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
}

/** Run a command to completion (killed after `timeout` ms so no test can hang). */
export async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeout?: number; shell?: boolean } = {}): Promise<RunResult> {
  const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'], shell: opts.shell })
  const out: Buffer[] = []
  let err = ''
  child.stdout.on('data', (c: Buffer) => out.push(c))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeout ?? 20_000)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return { code, signal, stdout: Buffer.concat(out), stderr: err }
}

export function runClient(url: string, args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return run(process.execPath, [CLIENT_BIN, '--server', url, ...args], opts)
}

export interface ServerProcess {
  child: ChildProcess
  url: string
  line: string
  stderr: () => string
  /** Send a signal and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/**
 * Start `cacheserv-pipe` and wait for its "listening on" line. With `direct`,
 * the bin is executed as a user would run it, so its shebang (and the node
 * flags in it) apply.
 */
export async function startServerProcess(t: Pick<TestContext, 'after'>, args: string[], { direct = false } = {}): Promise<ServerProcess> {
  const child = direct
    ? spawn(SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(process.execPath, [SERVER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 10_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const nl = out.indexOf('\n')
      if (nl !== -1) {
        clearTimeout(timer)
        resolve(out.slice(0, nl))
      }
    })
    void exited.then(([code]) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code} before listening: ${err}`))
    })
  })
  const m = /listening on (\S+)/.exec(line)
  if (!m) throw new Error(`no address in ${JSON.stringify(line)}`)
  return {
    child,
    url: m[1],
    line,
    stderr: () => err,
    async stop(signal = 'SIGTERM') {
      child.kill(signal)
      const [code, sig] = await exited
      return { code, signal: sig }
    },
  }
}
