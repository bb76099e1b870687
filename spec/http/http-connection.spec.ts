/**
 * HttpConnection: an HTTP client socket as the server counts it. Its leases
 * go when the socket goes, however it goes; it is idle when nothing runs or
 * waits to be sent; and it holds memory while stalled only when all of:
 * bytes waiting, no progress for the time given, a charged lease.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { BlockLease } from '../../lib/cache/block-lease.js'
import { HttpConnection } from '../../lib/http/http-connection.js'
import { writeFile } from '../helpers/fixtures.js'
import { curl, getWithoutReading, startGateway, stuck } from '../helpers/http.js'
import { socketPairs } from '../helpers/loopback.js'
import { tcpInFlightMax } from '../helpers/socket-buffers.js'
import { assertSameBytes } from '../helpers/suite.js'
import { poll, within } from '../helpers/wait.js'

const MiB = 1024 * 1024

/** A real lease whose releases are counted; `charged`: on a block the cache no longer holds. */
function lease(charged: boolean): BlockLease & { releases: () => number } {
  let releases = 0
  return Object.assign(new BlockLease(() => releases++, () => charged), { releases: () => releases })
}

/** The server's side with more queued than the kernel takes: the rest waits in the socket. */
async function backedUp(pair: Awaited<ReturnType<typeof socketPairs>>) {
  const p = await pair()
  p.client.pause()
  p.side.write(Buffer.alloc(tcpInFlightMax() + MiB))
  assert.ok(p.side.writableLength > 0)
  return p
}

describe('HttpConnection', () => {
  test('numbers connections in the order they come', async (t) => {
    const pair = await socketPairs(t)
    const a = new HttpConnection((await pair()).side)
    const b = new HttpConnection((await pair()).side)
    assert.ok(b.id > a.id)
  })

  test('closed resolves when the socket closes, and every lease still held is released then', async (t) => {
    const pair = await socketPairs(t)
    const { client, side } = await pair()
    const conn = new HttpConnection(side)
    const held = [lease(true), lease(false)]
    const marked = lease(false)
    for (const l of held) conn.leases.hold(l)
    conn.leases.mark(1_000_000, marked)
    assert.equal(await within(conn.closed, 50), false)
    client.end()
    assert.ok(await within(conn.closed, 5000), 'closed did not resolve')
    assert.deepEqual([...held, marked].map((l) => l.releases()), [1, 1, 1])
    assert.equal(conn.leases.size, 0)
  })

  test('closed resolves, and leases go, when the peer resets the connection (an error before the close)', async (t) => {
    const pair = await socketPairs(t)
    const { client, side } = await pair()
    const conn = new HttpConnection(side)
    const l = lease(true)
    conn.leases.hold(l)
    const errored = once(side, 'error')
    client.resetAndDestroy()
    await errored
    assert.ok(await within(conn.closed, 5000), 'closed did not resolve')
    assert.equal(l.releases(), 1)
  })

  test('is idle with no response running and nothing waiting in its socket', async (t) => {
    const pair = await socketPairs(t)
    const conn = new HttpConnection((await pair()).side)
    assert.equal(conn.idle, true)
    conn.active = 1
    assert.equal(conn.idle, false, 'a response runs')
    const stuckConn = new HttpConnection((await backedUp(pair)).side)
    assert.equal(stuckConn.idle, false, 'bytes wait in the socket')
  })

  test('refuseNewRequests closes an idle connection at once, and only marks a busy one', async (t) => {
    const pair = await socketPairs(t)
    const idle = new HttpConnection((await pair()).side)
    idle.refuseNewRequests()
    assert.equal(idle.draining, true)
    assert.equal(idle.socket.destroyed, true)
    const busy = new HttpConnection((await pair()).side)
    busy.active = 1
    busy.refuseNewRequests()
    assert.equal(busy.draining, true)
    assert.equal(busy.socket.destroyed, false, 'its response finishes first')
  })

  test('stalledHolding needs bytes waiting, no progress for the time given, and a charged lease', async (t) => {
    const pair = await socketPairs(t)
    const { side } = await backedUp(pair)
    // The connection's clock starts between these two readings.
    const before = Date.now()
    const conn = new HttpConnection(side)
    const after = Date.now()
    const stalled = after + 1000
    assert.equal(conn.stalledHolding(1000, stalled), false, 'it holds no lease')
    conn.leases.hold(lease(false))
    assert.equal(conn.stalledHolding(1000, stalled), false, 'its lease is on a block the cache holds')
    conn.leases.hold(lease(true))
    assert.equal(conn.stalledHolding(1000, stalled), true)
    assert.equal(conn.stalledHolding(1000, before + 999), false, 'not yet stalled that long')
    await sleep(20)
    conn.progress()
    assert.equal(conn.stalledHolding(1000, stalled), false, 'progress starts the clock again')
    assert.equal(conn.stalledHolding(1000, Date.now() + 1000), true)

    const reading = new HttpConnection((await pair()).side)
    reading.leases.hold(lease(true))
    assert.equal(reading.stalledHolding(1000, Date.now() + 1000), false, 'nothing waits in its socket')
  })

  test('destroy closes the socket', async (t) => {
    const pair = await socketPairs(t)
    const { client, side } = await pair()
    const conn = new HttpConnection(side)
    conn.destroy()
    assert.ok(await within(once(client, 'close'), 5000))
    assert.ok(await within(conn.closed, 5000))
  })
})

describe('an HTTP client that stopped reading, in the gateway', () => {
  test('is closed when another waits for memory; the other gets its file', async (t) => {
    const g = await startGateway(t, { cacheSize: MiB, maxBuffered: MiB })
    writeFile(g.root, 'big.bin', 64 * MiB)
    const other = writeFile(g.root, 'other.bin', 8 * MiB)
    const c = await getWithoutReading(g, 'big.bin', t)
    await stuck(g)
    const r = await curl([`${g.base}/other.bin`])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, other)
    // A paused socket never sees its end: the server's count says it was closed.
    assert.ok(await poll(() => g.server.stats().stalledClosed >= 1), 'the stalled reader was closed')
    assert.ok(await poll(() => g.server.stats().bufferedBytes === 0), 'and what it held given back')
    c.socket.destroy()
  })
})
