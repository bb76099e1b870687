/**
 * Job: a command's generator pulled one part at a time; with a heartbeat, a
 * slow part is preceded by empty PROGRESS parts, and the generator is still
 * asked for each part once.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import type { Part } from '../../lib/stages/items.js'
import { Job, type Outcome } from '../../lib/stages/job.js'

/** What the jobs below call when they settle: resolves the pull that drain() waits on. */
let settled: () => void = () => {}

/** Pull every outcome to the end (a result, an error, done), the way the source does: pull, wait for settle, take. */
async function drain(job: Job): Promise<Outcome[]> {
  const outcomes: Outcome[] = []
  for (;;) {
    await new Promise<void>((resolve) => {
      settled = resolve
      job.pull()
    })
    const o = job.take()!
    outcomes.push(o)
    if (!('part' in o) || o.part.kind === 'result') return outcomes
  }
}

describe('Job', () => {
  test('a part slower than the heartbeat comes after empty PROGRESS parts; the generator runs once per part', async () => {
    let nexts = 0
    async function* slow(): AsyncGenerator<Part, void, void> {
      nexts++
      await sleep(260)
      nexts++
      yield { kind: 'result', body: { ok: true } }
    }
    const job = new Job(1, slow(), { heartbeat: 50, onSettled: () => settled() })
    const outcomes = await drain(job)
    const last = outcomes.at(-1)!
    assert.deepEqual(last, { part: { kind: 'result', body: { ok: true } } })
    const beats = outcomes.slice(0, -1)
    assert.ok(beats.length >= 3 && beats.length <= 6, `${beats.length} heartbeats in 260 ms at 50 ms`)
    for (const b of beats) assert.deepEqual(b, { part: { kind: 'progress', body: {} } })
    assert.equal(nexts, 2, 'the generator body ran through once')
  })

  test('without a heartbeat, a slow part is simply waited for', async () => {
    async function* slow(): AsyncGenerator<Part, void, void> {
      await sleep(120)
      yield { kind: 'result', body: 1 }
    }
    const outcomes = await drain(new Job(1, slow(), { onSettled: () => settled() }))
    assert.deepEqual(outcomes, [{ part: { kind: 'result', body: 1 } }])
  })

  test('a fast command sends no heartbeat, and an error after heartbeats still arrives', async () => {
    async function* fast(): AsyncGenerator<Part, void, void> {
      yield { kind: 'result', body: 'quick' }
    }
    assert.deepEqual(await drain(new Job(1, fast(), { heartbeat: 50, onSettled: () => settled() })), [{ part: { kind: 'result', body: 'quick' } }])
    async function* failing(): AsyncGenerator<Part, void, void> {
      await sleep(130)
      throw new Error('disk gone')
    }
    const outcomes = await drain(new Job(2, failing(), { heartbeat: 50, onSettled: () => settled() }))
    assert.ok(outcomes.length >= 2, 'heartbeats came first')
    assert.match(String((outcomes.at(-1) as { error: Error }).error), /disk gone/)
  })

  test('stop() while a part is in the making ends the heartbeats', async () => {
    let finished = false
    async function* slow(): AsyncGenerator<Part, void, void> {
      try {
        await sleep(150)
        yield { kind: 'result', body: 1 }
      } finally {
        finished = true
      }
    }
    let settles = 0
    const job = new Job(1, slow(), { heartbeat: 20, onSettled: () => settles++ })
    job.pull()
    job.stop()
    await sleep(250)
    assert.equal(settles, 0, 'nothing settles after stop')
    assert.equal(finished, true, "the generator's cleanup ran")
  })
})
