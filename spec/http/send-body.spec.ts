/**
 * sendBody: a read's DATA parts written to an HTTP response, the next part
 * pulled only once the socket took the last, each lease released once its
 * bytes are written, and the part that completes the body held back until
 * the read's END: a body that cannot be trusted is never complete.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { BlockLease } from '../../lib/cache/block-lease.js'
import { type CacheservError, error } from '../../lib/errors.js'
import { HttpConnection } from '../../lib/http/http-connection.js'
import { type BodyOptions, sendBody } from '../../lib/http/send-body.js'
import type { Part } from '../../lib/stages/items.js'
import { writeFile } from '../helpers/fixtures.js'
import { curl, getWithoutReading, parseHead, startGateway, stuck } from '../helpers/http.js'
import { tcpInFlightMax } from '../helpers/socket-buffers.js'
import { assertSameBytes } from '../helpers/suite.js'
import { poll, within } from '../helpers/wait.js'

const MiB = 1024 * 1024

/** What the handler saw: how sendBody ended, and the connection it wrote on. */
interface Outcome {
  done: Promise<CacheservError | null>
  conn: HttpConnection
}

/**
 * An HTTP server whose one route sends `length` bytes from `parts()` with
 * sendBody, and, as the gateway does, resets the socket when sendBody throws
 * after the headers went out. Resolves with its port and each request's outcome.
 */
async function bodyServer(t: TestContext, length: number, parts: () => AsyncGenerator<Part, void, void>, opts: BodyOptions = { stallMs: 0 }) {
  const outcomes: Outcome[] = []
  const conns = new WeakMap<Socket, HttpConnection>()
  const server = http.createServer()
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => {})
    conns.set(socket, new HttpConnection(socket))
  })
  server.on('request', (req, res) => {
    const conn = conns.get(req.socket)!
    res.writeHead(200, { 'content-length': length })
    const done = sendBody(res, conn, parts(), length, opts).then(
      () => (res.end(), null),
      (err: CacheservError) => (req.socket.resetAndDestroy(), err),
    )
    outcomes.push({ done, conn })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))))
  return { port: (server.address() as AddressInfo).port, outcomes }
}

/** A GET whose body is collected; `pause` leaves it unread. `ended`: true for a whole body, false for one cut short (or none, the connection reset first). */
async function get(t: TestContext, port: number, { pause = false } = {}) {
  const req = http.get({ host: '127.0.0.1', port, path: '/' })
  t.after(() => void req.destroy())
  const res = await new Promise<http.IncomingMessage | null>((resolve) => {
    req.once('response', resolve)
    req.once('error', () => resolve(null))
  })
  const chunks: Buffer[] = []
  const ended = new Promise<boolean>((resolve) => {
    if (!res) return resolve(false)
    res.on('error', () => {})
    if (pause) res.pause()
    res.on('data', (c: Buffer) => chunks.push(c))
    res.once('end', () => resolve(true))
    res.once('close', () => resolve(res.complete))
  })
  return { req, res: res!, body: () => Buffer.concat(chunks), ended }
}

function lease(): BlockLease & { releases: () => number } {
  let releases = 0
  return Object.assign(new BlockLease(() => releases++, () => true), { releases: () => releases })
}

const data = (chunk: Buffer, l?: BlockLease): Part => ({ kind: 'data', chunk, lease: l })
const END: Part = { kind: 'end', body: {} }

describe('sendBody', () => {
  test('writes the DATA parts up to END, skipping other parts, counting bytes, each lease released once written', async (t) => {
    const chunks = [Buffer.alloc(1000, 1), Buffer.alloc(70_000, 2), Buffer.alloc(5, 3)]
    const leases = chunks.map(() => lease())
    const counted: number[] = []
    const { port, outcomes } = await bodyServer(t, 71_005, async function* () {
      yield { kind: 'progress', body: {} }
      for (const [i, c] of chunks.entries()) yield data(c, leases[i])
      yield END
    }, { stallMs: 0, onData: (n) => void counted.push(n) })
    const r = await get(t, port)
    assert.equal(await r.ended, true)
    assertSameBytes(r.body(), Buffer.concat(chunks))
    assert.equal(await outcomes[0].done, null)
    assert.deepEqual(counted, [1000, 70_000, 5])
    assert.ok(await poll(() => leases.every((l) => l.releases() === 1), 2000), 'every lease released')
    assert.equal(outcomes[0].conn.leases.size, 0)
  })

  test('holds the part that completes the body until END: the client never has the whole body before the read has ended well', async (t) => {
    let verdict!: (ok: boolean) => void
    let waits = 0
    const leases: ReturnType<typeof lease>[] = []
    const { port, outcomes } = await bodyServer(t, 2000, async function* () {
      const held = [lease(), lease()]
      leases.push(...held)
      yield data(Buffer.alloc(1000, 1), held[0])
      yield data(Buffer.alloc(1000, 2), held[1])
      const ok = await new Promise<boolean>((resolve) => ((verdict = resolve), waits++))
      if (!ok) throw error('ECHANGED', 'the file changed')
      yield END
    })
    for (const [i, ok] of [true, false].entries()) {
      const r = await get(t, port)
      assert.ok(await poll(() => r.body().length >= 1000 && waits === i + 1, 5000), 'the first part came, and the read waits')
      await sleep(100)
      assert.equal(r.body().length, 1000, 'the last part waits for END')
      verdict(ok)
      assert.equal(await r.ended, ok, ok ? 'complete after END' : 'cut short after the failure')
      assert.equal(r.body().length, ok ? 2000 : 1000)
    }
    assert.equal(await outcomes[0].done, null)
    assert.equal((await outcomes[1].done)?.code, 'ECHANGED')
    // The last part of the failed body was never written: its connection's book lets it go.
    assert.ok(await poll(() => leases.every((l) => l.releases() === 1), 5000), `releases: ${leases.map((l) => l.releases())}`)
  })

  test('a read that ends short of the length fails with EINTERNAL, and so does one that sends more', async (t) => {
    const short = await bodyServer(t, 2000, async function* () {
      yield data(Buffer.alloc(1000))
      yield END
    })
    const r1 = await get(t, short.port)
    assert.equal(await r1.ended, false)
    const err = await short.outcomes[0].done
    assert.equal(err?.code, 'EINTERNAL')
    assert.equal(err?.message, 'the read ended after 1000 of 2000 bytes')

    const long = await bodyServer(t, 1000, async function* () {
      yield data(Buffer.alloc(1000))
      yield data(Buffer.alloc(1))
      yield END
    })
    const r2 = await get(t, long.port)
    assert.equal(await r2.ended, false)
    const more = await long.outcomes[0].done
    assert.equal(more?.code, 'EINTERNAL')
    assert.equal(more?.message, 'a read sent more bytes than it announced')
  })

  test('pulls the next part only once the socket took the last: a client that stops reading holds what the socket holds, no more', async (t) => {
    const PARTS = 128
    let pulled = 0
    const { port, outcomes } = await bodyServer(t, PARTS * MiB, async function* () {
      for (let i = 0; i < PARTS; i++) {
        pulled++
        yield data(Buffer.alloc(MiB, i))
      }
      yield END
    })
    const r = await get(t, port, { pause: true })
    let last = -1
    let same = 0
    assert.ok(await poll(() => ((same = pulled === last ? same + 1 : 0), (last = pulled), same >= 30), 20_000), 'the pulls stopped')
    // What the kernel holds between the two ends, the one in the response's buffer and the one being written.
    const bound = Math.ceil(tcpInFlightMax() / MiB) + 2
    assert.ok(pulled <= bound, `${pulled} parts pulled for a client that reads nothing; at most ${bound} fit on the way`)
    r.res.resume()
    assert.equal(await r.ended, true)
    assert.equal(pulled, PARTS)
    assert.equal(await outcomes[0].done, null)
  })

  test('a client that takes nothing for stallMs fails the body with ETIMEDOUT', async (t) => {
    const { port, outcomes } = await bodyServer(t, 128 * MiB, async function* () {
      for (let i = 0; i < 128; i++) yield data(Buffer.alloc(MiB))
      yield END
    }, { stallMs: 200 })
    await get(t, port, { pause: true })
    assert.ok(await within(outcomes[0].done, 10_000), 'the stall was not noticed')
    const err = await outcomes[0].done
    assert.equal(err?.code, 'ETIMEDOUT')
    assert.equal(err?.message, 'the client took nothing for 200 ms')
  })

  test('a client that goes away while the body waits for it fails the body with ECLOSED, and its leases are released', async (t) => {
    const leases: ReturnType<typeof lease>[] = []
    const { port, outcomes } = await bodyServer(t, 128 * MiB, async function* () {
      for (let i = 0; i < 128; i++) {
        const l = lease()
        leases.push(l)
        yield data(Buffer.alloc(MiB), l)
      }
      yield END
    })
    const r = await get(t, port, { pause: true })
    assert.ok(await poll(() => leases.length > 2, 5000))
    await sleep(50)
    r.req.destroy()
    const err = await outcomes[0].done
    assert.equal(err?.code, 'ECLOSED')
    assert.ok(await poll(() => leases.every((l) => l.releases() === 1), 5000), 'every lease released with the connection')
  })
})

describe('sendBody in the gateway', () => {
  const BIG = 64 * MiB

  test('a client that never reads holds no more than the memory budget, and its leases are released when it goes', async (t) => {
    const g = await startGateway(t, { cacheSize: MiB, maxBuffered: 4 * MiB })
    writeFile(g.root, 'big.bin', BIG)
    const c = await getWithoutReading(g, 'big.bin', t)
    await stuck(g)
    const s = g.server.stats()
    assert.ok(s.httpBytesServed < BIG, 'not all of it was sent')
    assert.ok(s.bufferedBytes > 0, 'the stuck response holds blocks the cache does not')
    assert.ok(s.bufferedBytes <= s.bufferedLimit, `${s.bufferedBytes} held, limit ${s.bufferedLimit}`)
    c.socket.destroy()
    assert.ok(await poll(() => g.server.stats().bufferedBytes === 0), 'every lease released')
    assert.ok(await poll(() => g.server.stats().connections === 0))
  })

  test('a file that changes during a response ends it with a reset, never a complete body; the next GET has the new version', async (t) => {
    const g = await startGateway(t, { cacheSize: MiB })
    writeFile(g.root, 'big.bin', BIG)
    const c = await getWithoutReading(g, 'big.bin', t)
    await stuck(g)
    assert.equal(g.server.stats().stalledClosed, 0, 'still open: only the change may cut it off')
    const fresh = Buffer.alloc(BIG, 7)
    writeFileSync(join(g.root, 'big.bin'), fresh)
    c.socket.resume()
    await c.ended
    const got = c.received()
    const { status, headers, body } = parseHead(got)
    assert.equal(status, 200)
    assert.equal(headers['content-length'], String(BIG))
    assert.ok(body.length < BIG, `${body.length} of ${BIG} bytes: the body is cut short`)
    const after = await curl(['-i', `${g.base}/big.bin`])
    const h = parseHead(after.stdout)
    assert.notEqual(h.headers.etag, headers.etag)
    assertSameBytes(h.body, fresh)
  })
})
