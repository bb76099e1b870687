/** RoundRobin: the order in which a connection's jobs send, and how many work ahead of the socket. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setImmediate as tick } from 'node:timers/promises'
import type { Part } from '../../lib/stages/items.js'
import { Job } from '../../lib/stages/job.js'
import { MAX_AHEAD, RoundRobin } from '../../lib/stages/round-robin.js'

/** A job whose command yields `n` progress parts tagged with its id, counting how often it was asked. */
function job(id: number, n: number, opts: { bulky?: boolean; pulls?: number[] } = {}): Job {
  async function* run(): AsyncGenerator<Part, void, void> {
    for (let i = 0; i < n; i++) {
      if (opts.pulls) opts.pulls[id] = (opts.pulls[id] ?? 0) + 1
      yield { kind: 'progress', body: { id, i } }
    }
  }
  return new Job(id, run(), { bulky: opts.bulky ?? true, onSettled: () => {} })
}

/** Take every part, re-queueing each job after its turn, as the source does. */
async function drain(turns: RoundRobin, jobs: number): Promise<string[]> {
  const order: string[] = []
  let live = jobs
  for (let spins = 0; live > 0 && spins < 1000; spins++) {
    const j = turns.next()
    if (!j) {
      await tick()
      continue
    }
    const outcome = j.take()!
    if ('part' in outcome) {
      const { id, i } = (outcome.part as { body: { id: number; i: number } }).body
      order.push(`${id}.${i}`)
      turns.add(j)
    } else live--
  }
  return order
}

test('jobs take turns, one part each, in the order they were added', async () => {
  const turns = new RoundRobin()
  for (const id of [1, 2, 3]) turns.add(job(id, 2, { bulky: false }))
  assert.deepEqual(await drain(turns, 3), ['1.0', '2.0', '3.0', '1.1', '2.1', '3.1'])
})

test(`at most ${MAX_AHEAD} bulky jobs make a part ahead of the socket; small ones are never held back`, async () => {
  const turns = new RoundRobin()
  const pulls: number[] = []
  for (let id = 1; id <= MAX_AHEAD + 3; id++) turns.add(job(id, 3, { pulls }))
  turns.add(job(100, 3, { bulky: false, pulls }))
  assert.equal(turns.next(), null, 'nothing is ready before any job has run')
  await tick()
  const asked = pulls.filter((n, id) => id < 100 && n > 0).length
  assert.equal(asked, MAX_AHEAD, 'bulky jobs asked for a part')
  assert.equal(pulls[100], 1, 'the small job was asked too')
})

test('a removed job gets no more turns', async () => {
  const turns = new RoundRobin()
  const a = job(1, 3, { bulky: false })
  turns.add(a)
  turns.add(job(2, 1, { bulky: false }))
  turns.remove(a)
  assert.deepEqual(await drain(turns, 1), ['2.0'])
})
