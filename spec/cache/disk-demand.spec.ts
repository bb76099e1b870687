/**
 * DiskDemand: a prefetch goes only once no read a request waits on has run
 * for the quiet time; every read that starts holds it back again.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { DiskDemand } from '../../lib/cache/disk-demand.js'

/** Whether `p` has settled by the time the event loop has turned. */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false
  void p.then(() => (done = true))
  await sleep(0)
  return done
}

describe('DiskDemand', () => {
  test('with no read ever, idle() settles at once', async () => {
    const d = new DiskDemand(20)
    assert.equal(d.quiet, true)
    assert.equal(await settled(d.idle()), true)
  })

  test('idle() waits for every running read, then for the quiet time after the last', async () => {
    const d = new DiskDemand(30)
    const a = d.begin()
    const b = d.begin()
    assert.equal(d.running, 2)
    const idle = d.idle()
    let went = 0
    void idle.then(() => (went = performance.now()))
    a()
    a() // a second call is a no-op
    assert.equal(d.running, 1)
    await sleep(50)
    assert.equal(went, 0, 'one read still runs')
    const ended = performance.now()
    b()
    assert.equal(d.quiet, false, 'just ended: not quiet yet')
    await idle
    assert.ok(went - ended >= 25, `went ${(went - ended).toFixed(1)} ms after the last read ended`)
    assert.equal(d.quiet, true)
  })

  test('a read that starts within the quiet time holds the waiters back until it is over', async () => {
    const d = new DiskDemand(30)
    d.begin()()
    const idle = d.idle()
    await sleep(10)
    const c = d.begin()
    await sleep(60)
    assert.equal(await settled(idle), false, 'a read is running')
    c()
    await idle
    assert.equal(d.running, 0)
  })

  test('idle(signal) settles when the signal aborts, though a read never ends', async () => {
    const d = new DiskDemand(10)
    d.begin() // never over: a read on a hung mount
    const stop = new AbortController()
    const idle = d.idle(stop.signal)
    await sleep(30)
    assert.equal(await settled(idle), false)
    stop.abort()
    assert.equal(await settled(idle), true)
    assert.equal(await settled(d.idle(stop.signal)), true, 'already aborted: at once')
  })
})

