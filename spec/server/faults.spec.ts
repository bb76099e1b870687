/**
 * Faults around the server: running out of file descriptors, files deleted
 * or truncated under a read, clients that reset their connection. Every
 * request ends (with its bytes or an error code, never short), nothing
 * leaks, the server keeps serving, and no exception escapes.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { truncateSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, describe, test, type TestContext } from 'node:test'
import { type Client, connect } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { SERVER_BIN } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { connectTo, startServer } from '../helpers/server.js'
import { poll, within } from '../helpers/wait.js'
import { fdCount } from '../helpers/fds.js'

const KiB = 1024
const MiB = 1024 * KiB

// Anything that escapes to the top of this process during these tests is a failure (checked last).
const escaped: string[] = []
const onUncaught = (err: unknown) => void escaped.push(`uncaughtException: ${String((err as Error)?.stack ?? err)}`)
const onUnhandled = (err: unknown) => void escaped.push(`unhandledRejection: ${String((err as Error)?.stack ?? err)}`)
process.on('uncaughtException', onUncaught)
process.on('unhandledRejection', onUnhandled)
after(() => {
  process.off('uncaughtException', onUncaught)
  process.off('unhandledRejection', onUnhandled)
})


const isCode = (c: unknown): c is string => typeof c === 'string' && /^E[A-Z]+$/.test(c)

/**
 * Judge one read seen on the wire: it ended with END and carried exactly the
 * file (START, DATA and END agreeing), or it ended with an ERROR carrying a
 * code after a correct prefix. Never a short or wrong success.
 */
function judgeRead(frames: ReceivedFrame[], id: number, data: Buffer): { outcome: string; bytes: number } {
  const mine = frames.filter((f) => f.id === id)
  const last = mine[mine.length - 1]
  assert.ok(last && (last.type === FrameType.END || last.type === FrameType.ERROR), `read ${id} ended`)
  assert.deepEqual(mine.map((f) => f.seq), mine.map((_, i) => i), 'frames in sequence')
  const bytes = Buffer.concat(mine.filter((f) => f.type === FrameType.DATA).map((f) => f.payload))
  assert.ok(bytes.equals(data.subarray(0, bytes.length)), 'every byte sent is the original file')
  if (last.type === FrameType.END) {
    const start = mine.find((f) => f.type === FrameType.START)
    assert.ok(start, 'START before END')
    assert.equal(json(start).length, data.length, 'START announced the whole file')
    assert.equal(json(last).length, data.length, 'END confirms the whole file')
    assert.equal(bytes.length, data.length, 'a successful read is never short')
    return { outcome: 'END', bytes: bytes.length }
  }
  const code = json(last).code
  assert.ok(isCode(code), `an error with a code, got ${JSON.stringify(code)}`)
  return { outcome: code, bytes: bytes.length }
}

interface LimitedServer {
  child: ChildProcess
  url: string
  stderr(): string
  alive(): boolean
}

/** The server CLI as a child process whose fd limit is `nofile` (ulimit -n), on a loopback port. */
async function startLimitedServer(t: TestContext, root: string, nofile: number): Promise<LimitedServer> {
  const child = spawn('sh', ['-c', `ulimit -n ${nofile} && exec "$0" "$@"`, process.execPath, SERVER_BIN, '--root', root, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await once(child, 'exit')
    }
  })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`server did not start: ${err}`)), 10_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      if (out.includes('\n')) {
        clearTimeout(timer)
        resolve(out.slice(0, out.indexOf('\n')))
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code} before listening: ${err}`))
    })
  })
  const m = /listening on (tcp:\/\/127\.0\.0\.1:\d+)/.exec(line)
  assert.ok(m, `a loopback address in ${JSON.stringify(line)}`)
  return { child, url: m[1], stderr: () => err, alive: () => child.exitCode === null && child.signalCode === null }
}

describe('file descriptor exhaustion', () => {
  test('under a low fd limit every request ends, the server survives, and serves again once the load is gone', async (t) => {
    const root = tempDir(t)
    const files = Array.from({ length: 40 }, (_, i) => writeFile(root, `many/${i}.bin`, 1 * MiB + i * 4099))
    // The start loads its modules in parallel and holds ~50 descriptors for a moment; 64 leaves it
    // room, and the 52 reads below (32 running on one connection) still run out.
    const server = await startLimitedServer(t, root, 64)
    const clients: Client[] = []
    t.after(() => Promise.all(clients.map((c) => c.close())))

    /** Every outcome: 'ok' (byte-exact), or the error's code. */
    const outcomes: string[] = []
    const settle = (p: Promise<Buffer>, expected: Buffer) =>
      p.then(
        (got) => {
          assert.ok(got.equals(expected), 'a read that succeeds under fd pressure is byte-exact')
          outcomes.push('ok')
        },
        (err: { code?: unknown; message?: string }) => {
          assert.ok(isCode(err.code), `failed with a code: ${String(err.code)} ${err.message}`)
          outcomes.push(err.code as string)
        },
      )

    const main = await connect(server.url, { timeout: 5000 })
    clients.push(main)
    const work: Promise<void>[] = files.map((f, i) => settle(main.readFile(`many/${i}.bin`), f))
    // A few more connections at the same time, each with reads of its own (connecting may fail too).
    for (let k = 0; k < 4; k++) {
      work.push(
        connect(server.url, { timeout: 5000 }).then(
          async (c) => {
            clients.push(c)
            await Promise.all([0, 1, 2].map((j) => settle(c.readFile(`many/${(k * 7 + j) % 40}.bin`), files[(k * 7 + j) % 40])))
          },
          (err: { code?: unknown }) => {
            assert.ok(isCode(err.code), `connect failed with a code: ${String(err.code)}`)
            outcomes.push(`connect:${err.code as string}`)
          },
        ),
      )
    }
    const all = Promise.all(work)
    assert.ok(await within(all, 30_000), `every request ended (ended: ${outcomes.length})`)
    await all // rethrows an assertion made above
    t.diagnostic(`outcomes: ${JSON.stringify(outcomes.reduce<Record<string, number>>((acc, o) => ((acc[o] = (acc[o] ?? 0) + 1), acc), {}))}`)
    assert.ok(outcomes.filter((o) => !o.startsWith('connect:')).length >= 40, 'all 40 pipelined reads ended')
    assert.ok(server.alive(), `the server is still running; stderr: ${server.stderr()}`)

    // The load goes away; a fresh client is served byte-exact (retrying while the server lets go of its fds).
    await Promise.all(clients.splice(0).map((c) => c.close()))
    let fresh = 'not tried'
    const until = Date.now() + 10_000
    while (Date.now() < until) {
      try {
        const c = await connect(server.url, { timeout: 2000 })
        try {
          const got = await c.readFile('many/39.bin')
          fresh = got.equals(files[39]) ? 'exact' : `wrong bytes (${got.length})`
        } finally {
          await c.close()
        }
        break
      } catch (err) {
        fresh = String((err as { code?: unknown }).code)
        await sleep(100)
      }
    }
    assert.equal(fresh, 'exact')
    assert.ok(server.alive())
    assert.doesNotMatch(server.stderr(), /failed on a bug|uncaught|TypeError|RangeError/i)
  })
})

describe('files changing under a read', () => {
  /** Start a read on a paused raw peer, let the server begin it, do `change`, then let the peer read on. */
  async function readAcross(t: TestContext, name: string, size: number, change: (path: string) => void) {
    const { server, url, root } = await startServer(t)
    const data = writeFile(root, name, size)
    const peer = await rawPeer(t, url)
    peer.socket.pause()
    peer.send({ id: 1, op: 'read', path: name })
    assert.ok(await poll(() => server.stats().bytesServed > 0), 'the read started')
    assert.ok(server.stats().bytesServed < size, 'and was held back by the paused peer')
    change(join(root, name))
    peer.socket.resume()
    await peer.done(1)
    return { ...judgeRead(peer.frames, 1, data), data, url, root }
  }

  test('a file unlinked while it is read: the read completes with the original bytes or fails with a code, never short', async (t) => {
    const r = await readAcross(t, 'gone.bin', 32 * MiB, (path) => unlinkSync(path))
    t.diagnostic(`outcome ${r.outcome} after ${r.bytes} bytes`)
    // Afterwards the name is gone for a new read.
    const client = await connectTo(t, r.url)
    await assert.rejects(client.readFile('gone.bin'), { code: 'ENOENT' })
  })

  test('a file truncated while it is read: ECHANGED or the whole old content, never short', async (t) => {
    const r = await readAcross(t, 'shrink.bin', 32 * MiB, (path) => truncateSync(path, 5 * MiB + 3))
    assert.ok(r.outcome === 'END' || r.outcome === 'ECHANGED', `outcome ${r.outcome}`)
    t.diagnostic(`outcome ${r.outcome} after ${r.bytes} bytes`)
    // A new read gets the file as it is now, not blocks cached from before.
    const client = await connectTo(t, r.url)
    const now = await client.readFile('shrink.bin')
    assert.ok(now.equals(r.data.subarray(0, 5 * MiB + 3)))
  })

  test('a file truncated to nothing while it is read: ECHANGED or the whole old content, never short', async (t) => {
    const r = await readAcross(t, 'empty.bin', 16 * MiB, (path) => truncateSync(path, 0))
    assert.ok(r.outcome === 'END' || r.outcome === 'ECHANGED', `outcome ${r.outcome}`)
    const client = await connectTo(t, r.url)
    assert.equal((await client.readFile('empty.bin')).length, 0)
  })
})

describe('clients that reset their connection', () => {
  /**
   * Open `n` raw connections that each send two reads of big.bin and reset
   * (RST) either once DATA flows (`midStream`) or right after sending; then
   * wait (bounded) for the server to let go. Returns the fd counts.
   */
  async function resetMany(t: TestContext, midStream: boolean, n = 6) {
    const { server, url, root } = await startServer(t)
    const data = writeFile(root, 'big.bin', 16 * MiB)
    const other = await connectTo(t, url)
    assert.ok((await other.readFile('big.bin', { length: 10 })).equals(data.subarray(0, 10)))
    const before = fdCount()
    for (let i = 0; i < n; i++) {
      const peer = await rawPeer(t, url)
      peer.send({ id: 1, op: 'read', path: 'big.bin' })
      peer.send({ id: 2, op: 'read', path: 'big.bin', offset: 8 * MiB })
      if (midStream) await peer.until((fs) => fs.some((f) => f.type === FrameType.DATA))
      peer.socket.resetAndDestroy()
      assert.ok(await within(peer.closed, 5000), 'the peer closed')
    }
    assert.ok(await poll(() => server.stats().connections === 1), `the server let go of the reset connections (${server.stats().connections} left)`)
    await poll(() => fdCount() <= before, midStream ? 5000 : 2000)
    const after = fdCount()
    // Whatever happened to the others, the server still serves.
    assert.ok((await other.readFile('big.bin')).equals(data), 'the other client is still served byte-exact')
    return { before, after }
  }

  test('a reset mid-transfer frees the connection and leaks no fd; the server goes on serving', async (t) => {
    const { before, after } = await resetMany(t, true)
    assert.ok(after <= before, `fds back to ${before} (now ${after})`)
  })

  test(
    'a reset right after sending requests, before any response, leaks no fd either',
    async (t) => {
      const { before, after } = await resetMany(t, false)
      assert.ok(after <= before, `fds back to ${before} (now ${after})`)
    },
  )
})

describe('clients that half-close, then hang up', () => {
  test(
    'a client that ends its side after a read and hangs up mid-transfer leaks no fd',
    async (t) => {
      const { server, url, root } = await startServer(t)
      writeFile(root, 'big.bin', 16 * MiB)
      const before = fdCount()
      for (let i = 0; i < 5; i++) {
        const peer = await rawPeer(t, url)
        peer.socket.end(JSON.stringify({ id: 1, op: 'read', path: 'big.bin' }) + '\n')
        await peer.until((fs) => fs.filter((f) => f.type === FrameType.DATA).length >= 4)
        peer.socket.destroy()
        assert.ok(await within(peer.closed, 5000), 'the peer closed')
      }
      assert.ok(await poll(() => server.stats().connections === 0), 'the server let go of the connections')
      await poll(() => fdCount() <= before, 2000)
      assert.ok(fdCount() <= before, `fds back to ${before} (now ${fdCount()})`)
    },
  )
})

describe('nothing escapes', () => {
  test('no uncaughtException or unhandledRejection fired during these tests', () => {
    assert.deepEqual(escaped, [])
  })
})
