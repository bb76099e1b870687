import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Breaker } from '../../lib/tier/breaker.js'
import { poll } from '../helpers/wait.js'

test('opens after failures in a row, probes in the background, and closes when a probe succeeds', async () => {
  let up = false
  let probes = 0
  const changes: boolean[] = []
  const b = new Breaker({ failures: 3, retryMs: 20, probe: async () => (probes++, up), onChange: (open) => changes.push(open) })
  try {
    assert.equal(b.allows, true)
    b.failed()
    b.failed()
    b.succeeded() // a success in between starts the count again
    b.failed()
    b.failed()
    assert.equal(b.allows, true)
    b.failed()
    assert.equal(b.allows, false)
    assert.ok(await poll(() => probes >= 2, 2000), 'probes again while the tier is down')
    assert.equal(b.allows, false)
    up = true
    assert.ok(await poll(() => b.allows, 2000), 'closes once a probe succeeds')
    assert.deepEqual(changes, [true, false])
  } finally {
    b.stop()
  }
})

test('a probe that throws counts as down; stop() ends the probing', async () => {
  let probes = 0
  const b = new Breaker({ failures: 1, retryMs: 10, probe: async () => {
    probes++
    throw new Error('down')
  } }, true)
  assert.equal(b.allows, false, 'may start open')
  assert.ok(await poll(() => probes >= 2, 2000))
  b.stop()
  const seen = probes
  await new Promise((r) => setTimeout(r, 60))
  assert.ok(probes <= seen + 1, 'no probing after stop')
  assert.equal(b.allows, false)
})

test('reset() closes it at once', () => {
  const b = new Breaker({ failures: 1, retryMs: 10_000, probe: async () => false }, true)
  assert.equal(b.allows, false)
  b.reset()
  assert.equal(b.allows, true)
  b.stop()
})
