/** ParkedRequests: the queue of requests waiting for a job slot. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { CommandSpec } from '../../lib/commands/context.js'
import { MAX_PARKED, ParkedRequests } from '../../lib/stages/parked.js'

const spec: CommandSpec = { run: async function* () {} }
const fresh = (id: number) => ({ id, spec, req: { id, op: 'read', args: { path: `${id}` } } })
const resumed = (id: number) => ({ id, spec, resume: { seq: 3, offset: 100, resync: 1 } })

test('requests start in arrival order', () => {
  const q = new ParkedRequests()
  for (const id of [4, 2, 9]) q.push(fresh(id))
  assert.deepEqual([q.shift()!.id, q.shift()!.id, q.shift()!.id], [4, 2, 9])
  assert.equal(q.shift(), undefined)
})

test(`full at ${MAX_PARKED}`, () => {
  const q = new ParkedRequests()
  for (let id = 1; id < MAX_PARKED; id++) q.push(fresh(id))
  assert.equal(q.full, false)
  q.push(fresh(MAX_PARKED))
  assert.equal(q.full, true)
  q.take(5)
  assert.equal(q.full, false)
})

test('a waiting request is taken out of its place; the others keep their order', () => {
  const q = new ParkedRequests()
  for (const id of [1, 2, 3]) q.push(fresh(id))
  assert.equal(q.take(2)!.id, 2)
  assert.equal(q.take(2), undefined)
  assert.equal(q.has(2), false)
  assert.deepEqual(q.clear().map((p) => p.id), [1, 3])
  assert.equal(q.length, 0)
})

test('a NACK of a new request keeps its place and marks it to start as that resend; a waiting resend is not marked', () => {
  const q = new ParkedRequests()
  q.push(fresh(1))
  q.push(resumed(2))
  q.push(fresh(3))
  assert.equal(q.resyncWaiting(3, 7), true)
  assert.equal(q.resyncWaiting(2, 8), false, 'a resend is replaced, not marked')
  assert.equal(q.resyncWaiting(5, 9), false, 'not waiting here')
  const order = q.clear()
  assert.deepEqual(order.map((p) => p.id), [1, 2, 3])
  assert.equal(order[2].resync, 7)
  assert.equal(order[1].resync, undefined)
})
