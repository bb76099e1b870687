/**
 * A client's connections (lib/client/connections.ts) against a real server on
 * loopback: the first one opened and authenticated, the same one handed to
 * every request while it is usable, one new one for all the requests that
 * start after it ended, which failures may be sent again, and close().
 */
import assert from 'node:assert/strict'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { Connections, RETRY_DELAYS } from '../../lib/client/connections.js'
import type { Link, Slot } from '../../lib/client/link.js'
import { ResultRequest } from '../../lib/client/result-request.js'
import type { ConnectOptions, StatResult } from '../../lib/client/types.js'
import { error } from '../../lib/errors.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { poll } from '../helpers/wait.js'

async function open(t: TestContext, url: string, opts: ConnectOptions = {}): Promise<Connections> {
  const conns = await Connections.open(url, opts)
  t.after(() => conns.close())
  return conns
}

/** A `stat` of `path` begun on `conns`, as the client sends it. */
function stat(conns: Connections, path: string): { promise: Promise<StatResult>; slot: Slot } {
  const id = conns.nextId()
  const slot: Slot = { link: null, released: false }
  const req = new ResultRequest<StatResult>(conns.control(id, slot))
  conns.begin(id, slot, req, 'stat', { path })
  return { promise: req.promise, slot }
}

/** End the current connection from this side and wait until it is gone. */
async function endLink(conns: Connections): Promise<Link> {
  const old = conns.link
  old.socket.destroy()
  await old.done
  return old
}

describe('Connections', () => {
  test('opens with the server\'s HELLO and hands out the same connection while it is usable', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'a.bin', 123)
    const conns = await open(t, url)
    assert.equal(conns.link.hello.protocol, 1)
    const first = conns.acquire()
    assert.ok(!(first instanceof Promise), 'an open connection is handed out at once')
    assert.equal(first, conns.link)
    assert.equal(conns.acquire(), first)
    assert.equal((await stat(conns, 'a.bin').promise).size, 123)
    assert.equal(server.stats().totalConnections, 1)
  })

  test('numbers requests from 1 upwards', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url)
    assert.deepEqual([conns.nextId(), conns.nextId(), conns.nextId()], [1, 2, 3])
  })

  test('after the connection ended, the requests that start share one new connection', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'a.bin', 7)
    const conns = await open(t, url)
    const old = await endLink(conns)
    const a = conns.acquire()
    const b = conns.acquire()
    assert.ok(a instanceof Promise, 'an ended connection is replaced')
    assert.equal(a, b, 'both wait for the same new connection')
    const stats = [stat(conns, 'a.bin'), stat(conns, 'a.bin')]
    assert.equal(conns.pending, 2, 'waiting for the connection to open')
    for (const s of stats) assert.equal((await s.promise).size, 7)
    const next = await a
    assert.notEqual(next, old)
    assert.equal(conns.link, next)
    assert.equal(conns.pending, 0)
    assert.equal(server.stats().totalConnections, 2)
  })

  test('a server gone for good: ECLOSED, with the failed connect as its cause', async (t) => {
    const { server, url } = await startServer(t)
    const conns = await open(t, url)
    await server.close()
    await poll(() => conns.link.ended !== null)
    const { promise } = stat(conns, 'a.bin')
    await assert.rejects(promise, (err: Error & { code?: string; cause?: { code?: string } }) => {
      assert.equal(err.code, 'ECLOSED')
      assert.match(err.message, /a new one failed/)
      assert.equal(err.cause?.code, 'ECONNECT')
      return true
    })
    assert.equal(conns.pending, 0)
  })

  test('a connection close to the server\'s idle timeout is replaced, not used', async (t) => {
    // 400 ms of idle timeout: the margin is 100 ms, so after 300 ms quiet the connection is left.
    const { server, url, root } = await startServer(t, { idleTimeout: 400 })
    writeFile(root, 'a.bin', 5)
    const conns = await open(t, url)
    const old = conns.link
    await stat(conns, 'a.bin').promise
    await sleep(320)
    assert.equal(server.stats().connections, 1, 'the server has not closed it yet')
    const next = conns.acquire()
    assert.ok(next instanceof Promise)
    assert.equal(old.ended?.message, 'connection left before the server\'s idle timeout')
    assert.notEqual(await next, old)
    assert.equal(server.stats().totalConnections, 2)
  })

  test('authenticates with the token, on the first connection and on the next', async (t) => {
    const { server, url, root } = await startServer(t, { token: 'sesame' })
    writeFile(root, 'a.bin', 3)
    const conns = await open(t, url, { token: 'sesame' })
    assert.equal((await stat(conns, 'a.bin').promise).size, 3)
    await endLink(conns)
    assert.equal((await stat(conns, 'a.bin').promise).size, 3)
    assert.equal(server.stats().totalConnections, 2)
  })

  test('a server that wants a token: EAUTH without one, or with a wrong one', async (t) => {
    const { url } = await startServer(t, { token: 'sesame', authBackoff: 0 })
    const saved = process.env.CACHESERV_TOKEN
    delete process.env.CACHESERV_TOKEN
    t.after(() => {
      if (saved !== undefined) process.env.CACHESERV_TOKEN = saved
    })
    await assert.rejects(Connections.open(url, {}), { code: 'EAUTH', message: /needs a token/ })
    await assert.rejects(Connections.open(url, { token: 'wrong' }), { code: 'EAUTH' })
  })

  test('which failures may be sent again: a dead connection or a server shutting down, until close()', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url)
    const slot: Slot = { link: conns.link, released: false }
    assert.equal(conns.retryable(error('ENOENT', 'no such file'), slot), false)
    assert.equal(conns.retryable(error('ECLOSED', 'connection closed'), slot), true)
    assert.equal(slot.link!.ended, null, 'ECLOSED says nothing new about the connection')
    const shutdown = error('ESHUTDOWN', 'shutting down')
    assert.equal(conns.retryable(shutdown, slot), true)
    assert.equal(slot.link!.ended, shutdown, 'a server shutting down takes no new request on that connection')
    await conns.close()
    assert.equal(conns.retryable(error('ECLOSED', 'connection closed'), slot), false)
  })

  test('retryDelays: the option, else RETRY_DELAYS', async (t) => {
    const { url } = await startServer(t)
    assert.deepEqual((await open(t, url)).retryDelays, RETRY_DELAYS)
    assert.deepEqual((await open(t, url, { retryDelays: [5, 6] })).retryDelays, [5, 6])
  })

  test('close() fails what is in flight and what starts later with ECLOSED, and opens nothing', async (t) => {
    const { server, url, root } = await startServer(t)
    writeFile(root, 'a.bin', 3)
    const conns = await open(t, url)
    await endLink(conns)
    // This one waits for a new connection, which close() closes as soon as it opens.
    const waiting = stat(conns, 'a.bin')
    await conns.close()
    await assert.rejects(waiting.promise, { code: 'ECLOSED', message: 'client closed' })
    await assert.rejects(stat(conns, 'a.bin').promise, { code: 'ECLOSED', message: 'client closed' })
    await assert.rejects(Promise.resolve(conns.acquire()), { code: 'ECLOSED' })
    assert.equal(conns.pending, 0)
    assert.ok(await poll(() => server.stats().connections === 0), 'no connection is left open')
  })

  test('counts the NACKs its requests send', async (t) => {
    const { url } = await startServer(t)
    const conns = await open(t, url)
    const slot: Slot = { link: conns.link, released: false }
    conns.control(conns.nextId(), slot).nack({ seq: 1, offset: 0, resync: 1 })
    assert.deepEqual(conns.counters(), { nacks: 1, lostSync: 0, timeouts: 0, injected: 0 })
  })
})
