/** Delays for wrong tokens, per address (the server-level behaviour is in limits.spec). */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AuthThrottle, FORGET_MS, MAX_BACKOFF_FACTOR } from '../../lib/server/auth-throttle.js'

const FAR = Number.MAX_SAFE_INTEGER

describe('AuthThrottle', () => {
  it('doubles the delay of each wrong token from one address, up to its cap', () => {
    const t = new AuthThrottle(100)
    const delays: number[] = []
    // Each guess comes as the previous verdict is answered.
    let now = 1_000
    for (let i = 0; i < 8; i++) {
      const d = t.schedule('a', false, FAR, now)!
      delays.push(d)
      now += d
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 3200, 3200])
    assert.equal(Math.max(...delays), 100 * MAX_BACKOFF_FACTOR)
  })

  it('queues guesses sent in parallel one behind the other', () => {
    const t = new AuthThrottle(100)
    assert.deepEqual([0, 1, 2].map(() => t.schedule('a', false, FAR, 0)), [100, 300, 700])
  })

  it('answers the right token at once, whatever the address has done', () => {
    const t = new AuthThrottle(100)
    for (let i = 0; i < 5; i++) t.schedule('a', false, FAR, 0)
    assert.equal(t.schedule('a', true, FAR, 0), 0)
  })

  it('keeps addresses apart', () => {
    const t = new AuthThrottle(100)
    for (let i = 0; i < 5; i++) t.schedule('a', false, FAR, 0)
    assert.equal(t.schedule('b', false, FAR, 0), 100)
  })

  it('forgets an address once its delay has been over for FORGET_MS', () => {
    const t = new AuthThrottle(100)
    assert.equal(t.schedule('a', false, FAR, 0), 100)
    assert.equal(t.schedule('a', false, FAR, 100 + FORGET_MS), 200, 'still remembered at the edge')
    const until = 100 + FORGET_MS + 200
    assert.equal(t.schedule('a', false, FAR, until + FORGET_MS + 1), 100, 'forgotten after it')
  })

  it('leaves an attempt to its deadline, uncounted, when the queue already reaches it', () => {
    const t = new AuthThrottle(100)
    assert.equal(t.schedule('a', false, FAR, 0), 100) // queue until 100
    assert.equal(t.schedule('a', false, 100, 0), null)
    assert.equal(t.schedule('a', false, 50, 0), null)
    // Neither was counted: the next guess is the second failure.
    assert.equal(t.schedule('a', false, FAR, 100), 200)
  })

  it('counts a wrong token whose delay runs past its deadline (the deadline answers it)', () => {
    const t = new AuthThrottle(1000)
    assert.equal(t.schedule('p', false, 500, 0), 1000)
    assert.equal(t.schedule('p', false, FAR, 1000), 2000, 'the first was counted')
  })

  it('does nothing with a backoff of 0', () => {
    const t = new AuthThrottle(0)
    for (let i = 0; i < 5; i++) assert.equal(t.schedule('a', false, 0, 0), 0)
  })

  it('remembers about 4,096 addresses, no more', () => {
    const t = new AuthThrottle(100)
    for (let i = 0; i < 6000; i++) t.schedule(`p${i}`, false, FAR, 0)
    // The first 2,048 filled the old generation and were dropped when the second filled.
    assert.equal(t.schedule('p0', false, FAR, 0), 100, 'the oldest is forgotten')
    assert.equal(t.schedule('p5999', false, FAR, 0), 300, 'the newest is remembered')
  })
})
