/** Jobs: the running jobs of a connection, by id and in turn. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Inbox } from '../../lib/stages/inbox.js'
import type { Part } from '../../lib/stages/items.js'
import { Job } from '../../lib/stages/job.js'
import { Jobs } from '../../lib/stages/jobs.js'

/** A job whose generator says when its cleanup ran. */
function job(id: number, opts: { inbox?: Inbox; cleaned?: number[] } = {}): Job {
  async function* gen(): AsyncGenerator<Part, void, void> {
    try {
      yield { kind: 'progress', body: {} }
      yield { kind: 'end', body: {} }
    } finally {
      opts.cleaned?.push(id)
    }
  }
  return new Job(id, gen(), { inbox: opts.inbox ?? null, onSettled: () => {} })
}

test('uploads do not count against the running jobs; they have their own count', () => {
  const jobs = new Jobs()
  jobs.add(job(1))
  jobs.add(job(2, { inbox: new Inbox() }))
  jobs.add(job(3))
  assert.equal(jobs.size, 3)
  assert.equal(jobs.running, 2)
  assert.equal(jobs.uploads, 1)
})

test('dropping a job stops it (its cleanup runs) and leaves a newer job under its id alone', async () => {
  const cleaned: number[] = []
  const jobs = new Jobs()
  const old = job(1, { cleaned })
  jobs.add(old)
  // Started: its generator is paused inside the try.
  old.pull()
  await new Promise((r) => setTimeout(r, 10))
  const newer = job(1)
  jobs.add(newer)
  jobs.drop(old)
  assert.equal(jobs.get(1), newer)
  await new Promise((r) => setTimeout(r, 10))
  assert.deepEqual(cleaned, [1])
  jobs.drop(newer)
  assert.equal(jobs.has(1), false)
  assert.equal(jobs.size, 0)
})

test('jobs come in turn once their parts are ready, and a requeued one goes to the back', async () => {
  const jobs = new Jobs()
  for (const id of [1, 2, 3]) jobs.add(job(id))
  assert.equal(jobs.next(), null, 'nothing ready yet: each is asked for its part')
  await new Promise((r) => setTimeout(r, 10))
  const first = jobs.next()!
  assert.equal(first.id, 1)
  first.take()
  jobs.requeue(first)
  const order = [jobs.next()!.id, jobs.next()!.id]
  assert.deepEqual(order, [2, 3])
  // Asked for its next part by this call, ready by the next.
  let again = jobs.next()
  for (let i = 0; !again && i < 100; i++) {
    await new Promise((r) => setTimeout(r, 5))
    again = jobs.next()
  }
  assert.equal(again?.id, 1)
})

test('dropAll stops every job', async () => {
  const cleaned: number[] = []
  const jobs = new Jobs()
  for (const id of [1, 2]) {
    const j = job(id, { cleaned })
    jobs.add(j)
    j.pull()
  }
  await new Promise((r) => setTimeout(r, 10))
  jobs.dropAll()
  await new Promise((r) => setTimeout(r, 10))
  assert.equal(jobs.size, 0)
  assert.deepEqual(cleaned.sort(), [1, 2])
})
