/**
 * Requests that are safe to repeat (read, stat, ls, stats) outlive the death
 * of their connection: a server stopped and started again, a server process
 * killed mid-read and restarted. A read that had delivered bytes asks for the
 * rest only, from the same version of the file (else ECHANGED); a server that
 * stays gone is ECLOSED once the retry delays are spent; a write is never
 * sent twice.
 */
import assert from 'node:assert/strict'
import { readdirSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { type Client, connect, RETRY_DELAYS } from '../../lib/client/client.js'
import { CacheServer } from '../../lib/server/server.js'
import { type ServerProcess, startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024

/** An in-process server on `listen`, closed when the test ends unless closed before. */
async function serve(t: TestContext, root: string, listen: string): Promise<{ server: CacheServer; url: string }> {
  const server = await CacheServer.create({ root, settle: 0, writable: true })
  const url = await server.listen(listen)
  t.after(() => server.close())
  return { server, url }
}

async function client(t: TestContext, url: string, opts: Parameters<typeof connect>[1] = {}): Promise<Client> {
  const c = await connect(url, opts)
  t.after(() => c.close())
  return c
}

/** A `cacheserv-pipe` process on `where` (`--port N` or `--socket PATH`). */
function serverProcess(t: TestContext, root: string, where: string[]): Promise<ServerProcess> {
  return startServerProcess(t, ['--root', root, '--settle', '0', '--writable', ...where])
}

function portOf(url: string): string {
  return /:(\d+)$/.exec(url)![1]
}

describe('a server stopped and started again', () => {
  for (const kind of ['tcp', 'unix'] as const) {
    test(`between two calls of one client, over ${kind}: the second call succeeds`, async (t) => {
      const root = tempDir(t)
      const data = writeFile(root, 'a.bin', 300_000)
      const listen = kind === 'tcp' ? 'tcp://127.0.0.1:0' : `unix:${join(tempDir(t, 'cacheserv-sock-'), 's.sock')}`
      const first = await serve(t, root, listen)
      const c = await client(t, first.url)
      assert.equal((await c.stat('a.bin')).size, data.length)
      await first.server.close()
      // The calls start while nothing listens; the server is back 250 ms later, on the same address.
      const stat = c.stat('a.bin')
      const read = c.readFile('a.bin')
      const listing = c.ls()
      await sleep(250)
      const second = await serve(t, root, kind === 'tcp' ? first.url : listen)
      assert.equal((await stat).size, data.length)
      assert.ok((await read).equals(data))
      assert.deepEqual((await listing).map((e) => e.name), ['a.bin'])
      assert.ok((await c.stats()).uptime >= 0)
      assert.equal(second.server.stats().totalConnections, 1, 'all of them on one new connection')
    })
  }

  test('a server that never comes back: ECLOSED, with the connect error as cause, once the retry delays are spent', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.bin', 10)
    const { server, url } = await serve(t, root, 'tcp://127.0.0.1:0')
    const c = await client(t, url)
    await c.stat('a.bin')
    await server.close()
    const budget = RETRY_DELAYS.reduce((a, b) => a + b, 0)
    const t0 = Date.now()
    const failures = await Promise.allSettled([c.stat('a.bin'), c.readFile('a.bin'), c.ls(), c.stats()])
    const took = Date.now() - t0
    for (const f of failures) {
      assert.equal(f.status, 'rejected')
      const err = f.reason as Error & { code?: string; cause?: { code?: string } }
      assert.equal(err.code, 'ECLOSED')
      assert.match(err.message, /ECONNREFUSED/)
      assert.equal(err.cause?.code, 'ECONNECT')
    }
    assert.ok(took >= budget - 50, `gave up after ${took} ms, before the ${budget} ms of delays`)
    assert.ok(took < budget + 2000, `took ${took} ms`)
    assert.equal(c.pending, 0)
  })

  test('retryDelays sets the budget', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.bin', 10)
    const { server, url } = await serve(t, root, 'tcp://127.0.0.1:0')
    const c = await client(t, url, { retryDelays: [20, 20] })
    await c.stat('a.bin')
    await server.close()
    const t0 = Date.now()
    await assert.rejects(c.stat('a.bin'), { code: 'ECLOSED' })
    assert.ok(Date.now() - t0 < 1000, `took ${Date.now() - t0} ms`)
  })
})

describe('a server process killed mid-read and restarted', () => {
  /** Start a read of `name` from a killable server; return it once `after` bytes were consumed, with the server killed. */
  async function killMidRead(t: TestContext, opts: { size: number; after: number; change?: boolean }) {
    const root = tempDir(t)
    const data = writeFile(root, 'big.bin', opts.size)
    const first = await serverProcess(t, root, ['--port', '0'])
    const port = portOf(first.url)
    // A restart takes a node start-up (slower on a busy machine): a budget that waits for it.
    const c = await client(t, first.url, { retryDelays: [100, 300, 1000, 3000, 5000] })
    const stream = c.read('big.bin', { highWaterMark: 64 * 1024 })
    const chunks: Buffer[] = []
    let got = 0
    let killed: Promise<void> | null = null
    let second: ServerProcess | null = null
    const restarted = new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        chunks.push(chunk)
        got += chunk.length
        if (got >= opts.after && !killed) {
          // Hold the consumer while the server dies and comes back, so its bytes in flight are lost.
          stream.pause()
          killed = (async () => {
            await first.stop('SIGKILL')
            if (opts.change) {
              // The same size, another version: a new mtime.
              writeFile(root, 'big.bin', Buffer.alloc(opts.size, 7))
              utimesSync(join(root, 'big.bin'), new Date(), new Date(Date.now() + 60_000))
            }
            second = await serverProcess(t, root, ['--port', port])
            stream.resume()
          })().then(resolve, reject)
        }
      })
    })
    const ended = new Promise<Error | null>((resolve) => {
      stream.on('end', () => resolve(null))
      stream.on('error', (err) => resolve(err))
    })
    await restarted
    const error = await ended
    return { data, bytes: Buffer.concat(chunks), error: error as (Error & { code?: string }) | null, second: second!, client: c }
  }

  test('the read resumes from the byte it reached: the bytes equal the file', { timeout: 60_000 }, async (t) => {
    const { data, bytes, error, client: c } = await killMidRead(t, { size: 24 * MiB, after: 2 * MiB })
    assert.equal(error, null)
    assert.equal(bytes.length, data.length)
    assert.ok(bytes.equals(data), 'no byte twice, none skipped')
    // The same client goes on.
    assert.equal((await c.stat('big.bin')).size, data.length)
  })

  test('a file changed while the server was down fails the resumed read with ECHANGED', { timeout: 60_000 }, async (t) => {
    const { data, bytes, error } = await killMidRead(t, { size: 24 * MiB, after: 2 * MiB, change: true })
    assert.equal(error?.code, 'ECHANGED')
    assert.ok(bytes.length < data.length)
    assert.ok(bytes.equals(data.subarray(0, bytes.length)), 'what was delivered is the old version, as far as it went')
  })

  test('readFile, readChunks and readMany in flight resume too', { timeout: 60_000 }, async (t) => {
    const root = tempDir(t)
    const files = Array.from({ length: 6 }, (_, i) => writeFile(root, `f${i}.bin`, 3 * MiB + i * 1001))
    const first = await serverProcess(t, root, ['--port', '0'])
    const c = await client(t, first.url, { retryDelays: [100, 300, 1000, 3000, 5000] })
    // A slow chunk consumer keeps the reads in flight while the server dies.
    const pieces: Buffer[] = []
    const chunked = c.readChunks('f0.bin', (chunk) => {
      pieces.push(Buffer.from(chunk))
      const until = Date.now() + 2
      while (Date.now() < until);
    })
    const whole = c.readFile('f1.bin')
    const many = (async () => {
      const out: Buffer[] = []
      for await (const { data } of c.readMany(['f2.bin', 'f3.bin', 'f4.bin', 'f5.bin'], { inFlight: 2 })) out.push(data)
      return out
    })()
    assert.ok(await poll(() => pieces.length > 0), 'the reads started')
    await first.stop('SIGKILL')
    await serverProcess(t, root, ['--port', portOf(first.url)])
    const info = await chunked
    assert.equal(info.length, files[0].length)
    assert.ok(Buffer.concat(pieces).equals(files[0]))
    assert.ok((await whole).equals(files[1]))
    const got = await many
    got.forEach((b, i) => assert.ok(b.equals(files[i + 2]), `f${i + 2}.bin`))
  })

  test('a write in flight is not sent again: it fails with ECLOSED, and a read beside it resumes', { timeout: 60_000 }, async (t) => {
    const root = tempDir(t)
    const data = writeFile(root, 'big.bin', 24 * MiB)
    const first = await serverProcess(t, root, ['--port', '0'])
    const c = await client(t, first.url, { retryDelays: [100, 300, 1000, 3000, 5000] })
    let sent = 0
    async function* slowly() {
      for (let i = 0; i < 1000; i++) {
        sent++
        yield Buffer.alloc(64 * 1024, i)
        await sleep(10)
      }
    }
    const write = c.write('up.bin', slowly())
    write.catch(() => {})
    const stream = c.read('big.bin', { highWaterMark: 64 * 1024 })
    const chunks: Buffer[] = []
    stream.on('data', (b: Buffer) => chunks.push(b))
    stream.pause()
    assert.ok(await poll(() => sent > 3), 'the upload is under way')
    await first.stop('SIGKILL')
    const second = await serverProcess(t, root, ['--port', portOf(first.url)])
    stream.resume()
    await assert.rejects(write, { code: 'ECLOSED' })
    await new Promise<void>((resolve, reject) => stream.on('end', resolve).on('error', reject))
    assert.ok(Buffer.concat(chunks).equals(data))
    // Nothing of the write reached the new server: no file, and no upload's temporary file of its own
    // (it removed the dead server's at start).
    await sleep(200)
    await assert.rejects(c.stat('up.bin'), { code: 'ENOENT' })
    assert.deepEqual(readdirSync(root), ['big.bin'])
    assert.equal(second.child.exitCode, null)
  })
})
