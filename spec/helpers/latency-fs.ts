/**
 * A root with latency per read: a read-only FUSE view of a directory whose
 * every read of file bytes waits a fixed time first, as on a network mount
 * (spec/helpers/latency_fs.py, on Debian's python3-fuse). The view is
 * mounted by a process started here and unmounted by stopping it by its PID.
 * Used by the specs and by the bench.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('../../../spec/helpers/latency_fs.py', import.meta.url))

export interface LatencyFsTally {
  /** Reads of file bytes served. */
  reads: number
  /** The most of them waiting at one time. */
  mostAtOnce: number
}

export interface LatencyMount {
  dir: string
  /** Unmount, and say what was read. */
  stop(): Promise<LatencyFsTally>
}

/**
 * A Python that imports fuse (Debian's python3-fuse) and can mount a view
 * here, or why there is none (not root, no /dev/fuse, a container that may
 * not mount): a view is mounted and unmounted to find out.
 */
export async function latencyFsPython(): Promise<{ python: string } | { skipped: string }> {
  if (process.getuid?.() !== 0) return { skipped: 'mounting a FUSE view needs root' }
  if (!existsSync('/dev/fuse')) return { skipped: 'no /dev/fuse' }
  const python = ['/usr/bin/python3', 'python3'].find((py) => spawnSync(py, ['-c', 'import fuse'], { stdio: 'ignore', timeout: 30_000 }).status === 0)
  if (!python) return { skipped: 'no Python that imports fuse (apt-get install python3-fuse)' }
  const probe = mkdtempSync(join(tmpdir(), 'cacheserv-fuse-probe-'))
  try {
    mkdirSync(join(probe, 'source'))
    mkdirSync(join(probe, 'view'))
    await (await mountLatencyFs(python, join(probe, 'source'), join(probe, 'view'), 0)).stop()
    return { python }
  } catch (err) {
    return { skipped: `cannot mount a FUSE view: ${(err as Error).message.trim().split('\n').at(-1)}` }
  } finally {
    rmSync(probe, { recursive: true, force: true })
  }
}

/** Mount `source` at `dir` (an empty directory) with `delayMs` before each read. */
export async function mountLatencyFs(python: string, source: string, dir: string, delayMs: number): Promise<LatencyMount> {
  const child = spawn(python, [SCRIPT, source, dir, String(delayMs)], { stdio: ['ignore', 'pipe', 'pipe'] })
  const killNow = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    spawnSync('umount', ['-l', dir], { stdio: 'ignore' })
  }
  process.once('exit', killNow)
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s))
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s))
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`latency FS not mounted after 15 s: ${err}`)), 15_000)
      const check = () => {
        if (out.includes('mounted\n')) {
          clearTimeout(timer)
          resolve()
        }
      }
      child.stdout.on('data', check)
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`latency FS exited ${code} before mounting: ${err}`))
      })
    })
  } catch (e) {
    killNow()
    process.off('exit', killNow)
    throw e
  }
  return {
    dir,
    stop: async () => {
      await stopChild(child)
      process.off('exit', killNow)
      spawnSync('umount', ['-l', dir], { stdio: 'ignore' })
      const last = out.trim().split('\n').at(-1) ?? ''
      if (!last.startsWith('{')) throw new Error(`latency FS left no tally: ${err}`)
      const t = JSON.parse(last) as { reads: number; most_at_once: number }
      return { reads: t.reads, mostAtOnce: t.most_at_once }
    },
  }
}

/** SIGTERM (which unmounts), then SIGKILL after 5 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}
