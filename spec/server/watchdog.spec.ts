/**
 * The watchdog over one connection's deadlines, driven by a real request
 * parser and duplex with short deadlines: each deadline expires with its
 * own code and message, what counts as activity keeps a connection, the
 * clocks of a partial line stop while the server holds the input back, and
 * an expiry is reported once.
 */
import assert from 'node:assert/strict'
import { Duplex } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { type Deadlines, watchdog, type Watched } from '../../lib/server/watchdog.js'
import { createRequestParser } from '../../lib/stages/request-parser.js'
import { poll } from '../helpers/wait.js'

const NONE: Deadlines = { requestTimeout: 0, authTimeout: 0, idleTimeout: 0 }
const LINE = Buffer.from('{"id":1,"op":"stat","path":"a"}\n')

interface Expiry {
  code: string
  message: string
  stuck: boolean
  /** Ms after the watchdog started. */
  at: number
}

/**
 * A connection's parts: a parser fed by hand and drained as the pipeline
 * would, and a duplex whose writes are taken by the peer only while `reading`.
 */
function connection(t: TestContext, deadlines: Partial<Deadlines>, extra: Partial<Watched> = {}) {
  const parser = createRequestParser()
  parser.resume()
  const held: (() => void)[] = []
  let reading = true
  const duplex = new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      if (reading) cb()
      else held.push(cb)
    },
  })
  const expiries: Expiry[] = []
  let taken = 0
  const started = Date.now()
  const stop = watchdog(
    { duplex, parser, taken: () => taken, expire: (code, message, stuck) => void expiries.push({ code, message, stuck, at: Date.now() - started }), ...extra },
    { ...NONE, ...deadlines },
  )
  t.after(() => {
    stop()
    parser.destroy()
    duplex.destroy()
  })
  return {
    parser,
    duplex,
    expiries,
    stop,
    /** The peer takes `n` more bytes of output. */
    take: (n = 1) => void (taken += n),
    /** The peer stops reading: what the server writes stays in the duplex. */
    stopReading: () => void (reading = false),
    expired: () => poll(() => expiries.length > 0, 5000),
  }
}

/** Nothing expired on `c` so far. */
function quiet(c: { expiries: Expiry[] }, message?: string): void {
  assert.deepEqual(c.expiries, [], message)
}

describe('watchdog', () => {
  test('with no deadline set it never fires, and stop() is harmless', async (t) => {
    const c = connection(t, {}, { authenticated: () => false })
    await sleep(200)
    c.stop()
    c.stop()
    quiet(c)
  })

  test('no request within requestTimeout of HELLO: ETIMEDOUT, reported once', async (t) => {
    const c = connection(t, { requestTimeout: 100 })
    assert.ok(await c.expired())
    await sleep(200)
    assert.equal(c.expiries.length, 1, 'the watchdog stops once it fired')
    const [e] = c.expiries
    assert.deepEqual([e.code, e.message, e.stuck], ['ETIMEDOUT', 'no request within 0.1 s of HELLO', false])
    assert.ok(e.at >= 100, `fired after ${e.at} ms`)
  })

  test('a first request in time, then nothing pending: no request deadline applies', async (t) => {
    const c = connection(t, { requestTimeout: 100 })
    c.parser.write(LINE)
    await sleep(400)
    quiet(c)
  })

  test('blank lines are no request', async (t) => {
    const c = connection(t, { requestTimeout: 150 })
    const timer = setInterval(() => c.parser.write(Buffer.from('\n')), 20)
    t.after(() => clearInterval(timer))
    assert.ok(await c.expired())
    assert.equal(c.expiries[0].message, 'no request within 0.15 s of HELLO')
  })

  test('a request line not whole within requestTimeout of its first byte: ETIMEDOUT', async (t) => {
    const c = connection(t, { requestTimeout: 100 })
    c.parser.write(LINE)
    const began = Date.now()
    c.parser.write(Buffer.from('{"id":2,"op":'))
    // More bytes of the same line do not restart its clock.
    const timer = setInterval(() => c.parser.write(Buffer.from(' ')), 20)
    t.after(() => clearInterval(timer))
    assert.ok(await c.expired())
    const [e] = c.expiries
    assert.deepEqual([e.code, e.message, e.stuck], ['ETIMEDOUT', 'a request line did not arrive whole within 0.1 s of its first byte', false])
    assert.ok(Date.now() - began >= 100)
  })

  test('the clock of a partial line stops while the server holds the input back', async (t) => {
    const c = connection(t, { requestTimeout: 100 })
    c.parser.write(LINE)
    c.duplex.pause()
    c.parser.write(Buffer.from('{"id":2'))
    await sleep(500)
    quiet(c, 'no expiry while the socket is paused')
    c.duplex.resume()
    const resumed = Date.now()
    assert.ok(await c.expired(), 'the clock runs again once the input flows')
    assert.equal(c.expiries[0].message, 'a request line did not arrive whole within 0.1 s of its first byte')
    assert.ok(Date.now() - resumed >= 50, 'counted from when the hold ended, not from the first byte')
  })

  test('an upload frame whose bytes stop coming for requestTimeout: ETIMEDOUT; while they come, none', async (t) => {
    const c = connection(t, { requestTimeout: 100 })
    c.parser.write(LINE)
    // The magic's first byte starts a frame; each further byte of its header is input.
    c.parser.write(Buffer.from([0xc5]))
    const zero = Buffer.alloc(1)
    let sent = 0
    const timer = setInterval(() => {
      if (sent++ < 10) c.parser.write(zero)
    }, 30)
    t.after(() => clearInterval(timer))
    await sleep(250)
    quiet(c, 'a frame arriving slowly but steadily is not cut off')
    assert.ok(await c.expired())
    assert.ok(sent >= 10, 'it fired only once the bytes stopped')
    assert.deepEqual([c.expiries[0].code, c.expiries[0].message], ['ETIMEDOUT', 'an upload frame stalled for 0.1 s'])
  })

  test('no valid token within authTimeout: EAUTH; authenticated in time: none', async (t) => {
    const late = connection(t, { authTimeout: 100 }, { authenticated: () => false })
    let ok = false
    const inTime = connection(t, { authTimeout: 100 }, { authenticated: () => ok })
    setTimeout(() => (ok = true), 30)
    assert.ok(await late.expired())
    const [e] = late.expiries
    assert.deepEqual([e.code, e.message, e.stuck], ['EAUTH', 'no valid token within 0.1 s of HELLO', false])
    assert.ok(e.at >= 100)
    await sleep(300)
    quiet(inTime)
  })

  test('authTimeout means nothing for a server without a token', async (t) => {
    const c = connection(t, { authTimeout: 50 })
    await sleep(300)
    quiet(c)
  })

  test('idle: no request and no output taken for idleTimeout: ETIMEDOUT, not stuck when nothing waits to go out', async (t) => {
    const c = connection(t, { idleTimeout: 150 })
    c.parser.write(LINE)
    const sent = Date.now()
    assert.ok(await c.expired())
    const [e] = c.expiries
    assert.deepEqual([e.code, e.message, e.stuck], ['ETIMEDOUT', 'no request and no answer taken for 0.15 s', false])
    assert.ok(Date.now() - sent >= 150)
  })

  test('idle with output the peer does not take: stuck', async (t) => {
    const c = connection(t, { idleTimeout: 150 })
    c.stopReading()
    c.duplex.write(Buffer.alloc(100))
    assert.ok(c.duplex.writableLength > 0)
    assert.ok(await c.expired())
    assert.equal(c.expiries[0].stuck, true)
  })

  test('requests, or output taken, keep a connection; blank lines do not', async (t) => {
    const requests = connection(t, { idleTimeout: 150 })
    const output = connection(t, { idleTimeout: 150 })
    const blanks = connection(t, { idleTimeout: 150 })
    const timer = setInterval(() => {
      requests.parser.write(LINE)
      output.take()
      blanks.parser.write(Buffer.from('\r\n'))
    }, 25)
    t.after(() => clearInterval(timer))
    assert.ok(await blanks.expired(), 'blank lines are not activity')
    await sleep(300)
    quiet(requests)
    quiet(output)
    clearInterval(timer)
    assert.ok(await requests.expired(), 'idle once the requests stop')
    assert.ok(await output.expired(), 'idle once the peer stops taking output')
  })

  test('a request the server is still working on, with nothing left to take, is not idleness; stuck output is', async (t) => {
    const working = connection(t, { idleTimeout: 100 }, { working: () => true })
    const frozen = connection(t, { idleTimeout: 100 }, { working: () => true })
    frozen.stopReading()
    frozen.duplex.write(Buffer.alloc(100))
    assert.ok(await frozen.expired(), 'a peer that does not read is idle even while its request runs')
    assert.equal(frozen.expiries[0].stuck, true)
    await sleep(300)
    quiet(working)
  })

  test('stop() ends the watch before any deadline', async (t) => {
    const c = connection(t, { requestTimeout: 50, authTimeout: 50, idleTimeout: 50 }, { authenticated: () => false })
    c.stop()
    await sleep(250)
    quiet(c)
  })
})
