/**
 * An attacker on the same machine, in a child process (Python, ctypes):
 * exchanges pairs of names with renameat2(RENAME_EXCHANGE) in a tight loop,
 * so that a name is at every moment either the one thing or the other; and
 * watches given FIFOs for readers: a writer blocked in open() wakes when
 * anyone opens the FIFO for reading (and opens at once while a reader holds
 * it), so its count is 0 exactly when no one ever opened it for reading. It
 * stops by itself after `seconds`, or when killed; the test kills it by PID
 * at teardown anyway.
 */
import { spawn } from 'node:child_process'
import type { TestContext } from 'node:test'

const SCRIPT = String.raw`
import ctypes, json, os, sys, threading, time
args = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
def exchange(a, b):
    if hasattr(libc, 'renameat2'):
        return libc.renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)
    return libc.syscall(316, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE)  # x86_64
pairs = [(a.encode(), b.encode()) for a, b in args['pairs']]
deadline = time.monotonic() + args['seconds']
stop = False
opens = {f: 0 for f in args['fifos']}
def watch(fifo):
    while not stop:
        fd = os.open(fifo, os.O_WRONLY)  # blocks until a reader opens it
        if not stop:
            opens[fifo] += 1
        os.close(fd)
watchers = [threading.Thread(target=watch, args=(f,), daemon=True) for f in args['fifos']]
for w in watchers: w.start()
print(json.dumps({'ready': True}), flush=True)
swaps = 0
while time.monotonic() < deadline:
    if not pairs:
        time.sleep(0.01)
    for a, b in pairs:
        if exchange(a, b) != 0:
            raise OSError(ctypes.get_errno(), 'renameat2')
        swaps += 1
stop = True
for f in args['fifos']:
    fd = os.open(f, os.O_RDONLY | os.O_NONBLOCK)  # wakes the watcher; not counted
    os.close(fd)
for w in watchers: w.join(2)
print(json.dumps({'swaps': swaps, 'opens': opens}), flush=True)
`

export interface SwapReport {
  swaps: number
  /** Per watched FIFO: how often the watcher got through to a reader (0: never opened for reading). */
  opens: Record<string, number>
}

export interface Swapper {
  pid: number
  /** Resolves when it stopped by itself, with what it did. */
  done: Promise<SwapReport>
}

/** Start exchanging `pairs` for `seconds`; resolves once it runs (the FIFO watchers are waiting). */
export async function startSwapper(t: Pick<TestContext, 'after'>, pairs: [string, string][], fifos: string[], seconds: number): Promise<Swapper> {
  const child = spawn('python3', ['-c', SCRIPT, JSON.stringify({ pairs, fifos, seconds })], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
  const lines: string[] = []
  let wake: (() => void) | null = null
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c
    let nl
    while ((nl = out.indexOf('\n')) >= 0) {
      lines.push(out.slice(0, nl))
      out = out.slice(nl + 1)
      wake?.()
    }
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const next = async (): Promise<string> => {
    while (lines.length === 0) {
      const gone = await Promise.race([exited.then(() => true), new Promise<false>((r) => (wake = () => r(false)))])
      if (gone && lines.length === 0) throw new Error(`swapper exited: ${err.trim()}`)
    }
    return lines.shift()!
  }
  await next() // ready
  const done = (async () => {
    const report = JSON.parse(await next()) as SwapReport
    await exited
    return report
  })()
  done.catch(() => {})
  return { pid: child.pid!, done }
}
