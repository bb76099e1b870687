/**
 * ConnectionSlots over real loopback sockets, each served as an
 * HttpConnection (the simplest Connection there is): slots up to the limit,
 * free again on close, the graceful drain, cutting everything off, and
 * closing the connections that hold memory and stopped reading.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import { Jail } from '../../lib/fs/jail.js'
import { openFile } from '../../lib/fs/open-file.js'
import { HttpConnection } from '../../lib/http/http-connection.js'
import { STALL_MS } from '../../lib/server/connection.js'
import { ConnectionSlots } from '../../lib/server/connection-slots.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { socketPairs } from '../helpers/loopback.js'
import { tcpInFlightMax } from '../helpers/socket-buffers.js'
import { poll, within } from '../helpers/wait.js'

const BLOCK = 4096

/** A lease on a block the cache has let go of: whoever holds it holds memory outside the cache. */
async function chargedLease(t: TestContext) {
  const root = tempDir(t)
  writeFile(root, 'f.bin', 2 * BLOCK)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const file = await openFile(jail, 'f.bin')
  t.after(() => file.fh.close())
  const cache = new BlockCache({ limit: 64 * BLOCK, blockSize: BLOCK, memory: new MemoryBudget(64 * BLOCK) })
  const lease = cache.lease(file, 0, await cache.block(file, 0))
  cache.evictFile(file)
  assert.equal(lease.charged, true)
  return lease
}

describe('ConnectionSlots', () => {
  test('takes connections up to its limit; a slot is free again once its connection has closed, and then onClosed runs', async (t) => {
    const pair = await socketPairs(t, { drain: true })
    const slots = new ConnectionSlots(2)
    const a = await pair()
    const b = await pair()
    let sizeWhenClosed = -1
    slots.add(new HttpConnection(a.side), () => (sizeWhenClosed = slots.size))
    assert.equal(slots.full, false)
    slots.add(new HttpConnection(b.side))
    assert.equal(slots.full, true)
    assert.equal(slots.size, 2)
    a.client.end()
    assert.ok(await poll(() => !slots.full), 'the slot of a closed connection was not given back')
    assert.equal(slots.size, 1)
    assert.equal(sizeWhenClosed, 1, 'onClosed ran before the slot was free')
  })

  test('destroy cuts off every connection, the refused ones too; closed() resolves once they have gone', async (t) => {
    const pair = await socketPairs(t, { drain: true })
    const slots = new ConnectionSlots(1)
    const served = await pair()
    const refused = await pair()
    slots.add(new HttpConnection(served.side))
    slots.refused(refused.side)
    const closed = slots.closed()
    const peersClosed = [once(served.client, 'close'), once(refused.client, 'close')]
    assert.equal(await within(closed, 50), false, 'closed before anything was closed')
    slots.destroy()
    assert.equal(served.side.destroyed, true)
    assert.equal(refused.side.destroyed, true)
    assert.ok(await within(closed, 5000), 'closed() did not resolve')
    assert.ok(await within(peersClosed[0], 5000), 'the served peer was not cut off')
    assert.ok(await within(peersClosed[1], 5000), 'the refused peer was not cut off')
    assert.equal(slots.size, 0)
  })

  test('drain refuses new requests everywhere and waits while a response runs, until it ends', async (t) => {
    const pair = await socketPairs(t, { drain: true })
    const slots = new ConnectionSlots(4)
    const busy = new HttpConnection((await pair()).side)
    const idle = new HttpConnection((await pair()).side)
    busy.active = 1
    slots.add(busy)
    slots.add(idle)
    const drained = slots.drain(60_000)
    assert.equal(busy.draining, true)
    assert.equal(idle.socket.destroyed, true, 'an idle HTTP connection closes when told to drain')
    assert.equal(await within(drained, 200), false, 'did not wait for the running response')
    busy.active = 0
    assert.ok(await within(drained, 5000), 'still waiting after the response ended')
    assert.equal(busy.socket.destroyed, false, 'drain closes nothing that was busy')
  })

  test('drain gives up after the grace', async (t) => {
    const pair = await socketPairs(t, { drain: true })
    const slots = new ConnectionSlots(4)
    const busy = new HttpConnection((await pair()).side)
    busy.active = 1
    slots.add(busy)
    assert.ok(await within(slots.drain(50), 5000), 'waited past the grace')
  })

  test('closeStalled closes a connection that holds memory and whose peer stopped reading, once STALL_MS has passed', async (t) => {
    const pair = await socketPairs(t, { drain: true })
    const slots = new ConnectionSlots(4)
    const stuck = await pair()
    const reading = await pair()
    const leases = [await chargedLease(t), await chargedLease(t)]
    stuck.client.pause()
    // More than the kernel holds between the two ends: the rest waits in the socket.
    stuck.side.write(Buffer.alloc(tcpInFlightMax() + 1024 * 1024))
    reading.side.write(Buffer.alloc(1024))
    assert.ok(await poll(() => reading.side.writableLength === 0), 'the reading peer did not take its bytes')
    assert.equal(stuck.side.writableLength > 0, true)
    // Made last: a connection counts as making progress from its start.
    const holding = new HttpConnection(stuck.side)
    holding.leases.hold(leases[0])
    const other = new HttpConnection(reading.side)
    other.leases.hold(leases[1])
    slots.add(holding)
    slots.add(other)
    assert.equal(slots.closeStalled(), 0, 'closed before STALL_MS without progress')
    assert.equal(slots.closeStalled(Date.now() + STALL_MS), 1)
    assert.equal(stuck.side.destroyed, true)
    assert.equal(reading.side.destroyed, false, 'closed a connection whose peer reads')
    assert.equal(slots.stalledClosed, 1)
    assert.ok(await poll(() => slots.size === 1), 'the closed connection kept its slot')
  })
})
