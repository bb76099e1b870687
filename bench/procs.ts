/**
 * Every process the benchmark starts goes through here, so that each one is
 * bounded in time and killed by its PID at the end (or on Ctrl-C). Shell
 * pipelines get their own process group (detached), so killing the group led
 * by the shell's PID also ends the programs in the pipe.
 */
import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process'
import { once } from 'node:events'
import { dirname } from 'node:path'
import { BenchError, log, now } from './util.js'

interface Tracked {
  child: ChildProcess
  name: string
  /** Started detached: the PID is also its process group's id. */
  group: boolean
}

const tracked = new Map<number, Tracked>()
/** PIDs we asked to stop: their exit is expected. */
const stopped = new Set<number>()

/** PATH with this node first, so `node` in a shell (and `#!/usr/bin/env node`) is the one running the benchmark. */
export function benchEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...extra }
}

export function start(name: string, cmd: string, args: string[], opts: SpawnOptions & { group?: boolean } = {}): ChildProcess {
  const group = opts.group ?? false
  const child = spawn(cmd, args, { env: benchEnv(), ...opts, detached: group })
  const pid = child.pid
  if (pid !== undefined) {
    tracked.set(pid, { child, name, group })
    child.once('exit', () => tracked.delete(pid))
  }
  return child
}

function signal(t: Tracked, pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(t.group ? -pid : pid, sig)
  } catch {
    // already gone
  }
}

/** SIGKILL everything still running, at once (the Ctrl-C and crash path; synchronous). */
export function killAllNow(): number {
  let n = 0
  for (const [pid, t] of tracked) {
    signal(t, pid, 'SIGKILL')
    n++
  }
  tracked.clear()
  return n
}

/** Stop one process: SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child: ChildProcess, graceMs = 3000): Promise<void> {
  const pid = child.pid
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  const t = tracked.get(pid)
  if (!t) return
  const exited = once(child, 'exit')
  stopped.add(pid)
  signal(t, pid, 'SIGTERM')
  const timer = setTimeout(() => signal(t, pid, 'SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
  tracked.delete(pid)
}

/** Stop everything still running. */
export async function stopAll(): Promise<string[]> {
  const names = [...tracked.values()].map((t) => `${t.name} (pid ${t.child.pid})`)
  await Promise.all([...tracked.values()].map((t) => stop(t.child)))
  return names
}

export interface ShellResult {
  /** Wall time from spawn to exit, ms. */
  ms: number
  code: number | null
  signal: NodeJS.Signals | null
  stdout: Buffer
  stderr: string
}

/**
 * Run `sh -c cmd` and time it from spawn to exit. stdout is captured only if
 * asked (a pipeline that ends in `> /dev/null` writes nothing here anyway).
 */
export async function shell(name: string, cmd: string, timeoutMs: number, captureStdout = false, program: 'sh' | 'bash' = 'sh'): Promise<ShellResult> {
  const t0 = now()
  const child = start(name, program, ['-c', cmd], { group: true, stdio: ['ignore', captureStdout ? 'pipe' : 'ignore', 'pipe'] })
  const out: Buffer[] = []
  let err = ''
  child.stdout?.on('data', (c: Buffer) => out.push(c))
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    if (child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
  }, timeoutMs)
  let ms = 0
  child.once('exit', () => (ms = now() - t0))
  const [code, sig] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  if (timedOut) throw new BenchError(`${name}: killed after ${(timeoutMs / 1000).toFixed(0)} s: ${cmd}`)
  return { ms, code, signal: sig, stdout: Buffer.concat(out), stderr: err }
}

/**
 * Start a long-running helper and wait for its first stdout line (its
 * "ready" line); fails if it exits first or takes longer than `timeoutMs`.
 */
export async function startServer(name: string, cmd: string, args: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<{ child: ChildProcess; line: string; stderr: () => string }> {
  // stdin is a pipe: our own helpers exit when it closes, so they never outlive the benchmark.
  const t0 = now()
  const child = start(name, cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: benchEnv(env) })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString()
    if (err.length > 64 * 1024) err = err.slice(-32 * 1024)
  })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new BenchError(`${name} did not start within ${timeoutMs / 1000} s: ${err}`)), timeoutMs)
    const onData = (c: Buffer) => {
      out += c.toString()
      const nl = out.indexOf('\n')
      if (nl !== -1) {
        clearTimeout(timer)
        child.stdout!.off('data', onData)
        child.stdout!.resume()
        log(`${name}: pid ${child.pid} ready in ${((now() - t0) / 1000).toFixed(1)} s`)
        resolve(out.slice(0, nl))
      }
    }
    child.stdout!.on('data', onData)
    child.once('error', (e) => {
      clearTimeout(timer)
      reject(new BenchError(`${name}: ${e.message}`))
    })
    child.once('exit', (code, sig) => {
      clearTimeout(timer)
      reject(new BenchError(`${name} exited (${code ?? sig}) before it was ready: ${err}`))
    })
  })
  child.once('exit', (code, sig) => {
    if (!stopping && !stopped.has(child.pid!)) process.stderr.write(`bench: ${name} exited unexpectedly (${code ?? sig}): ${err}\n`)
  })
  return { child, line, stderr: () => err }
}

let stopping = false
/** From now on, servers exiting is expected. */
export function markStopping(): void {
  stopping = true
}
