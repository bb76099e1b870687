import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import pumpify from 'pumpify'
import { Duplex, Transform } from 'readable-stream'
import { joinStages } from '../../lib/stages/chain.js'
import { poll } from '../helpers/wait.js'

/** The chain takes and gives bytes, as a connection's does. */
const pass = () => new Transform({ transform: (chunk: Buffer, _enc, cb) => cb(null, chunk) })
const CHUNK = 16 * 1024
/** A chunk that says which it is. */
const u32 = (n: number) => {
  const b = Buffer.alloc(CHUNK)
  b.writeUInt32BE(n)
  return b
}

/**
 * A middle stage like the connection's source: it answers what it was sent, and once its input
 * ends it waits for its work to finish before ending (here, for good).
 */
function busyStage(): Duplex {
  let held: (() => void) | null = null
  return new Duplex({
    objectMode: true,
    read() {
      const go = held
      held = null
      go?.()
    },
    write(this: Duplex, chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
      if (this.push(chunk)) cb()
      else held = cb // taken again once the reader wants more
    },
    final() {},
  })
}

/** The first stage has ended (the peer stopped sending), a middle one still works. */
async function endedInput(join: (...stages: Duplex[]) => pumpify) {
  const stages = [pass(), busyStage(), pass()]
  const chain = join(...stages)
  chain.on('error', () => {})
  const out: Buffer[] = []
  chain.on('data', (chunk: Buffer) => out.push(chunk))
  chain.end(u32(1))
  assert.ok(await poll(() => out.length === 1 && stages[0].writableFinished, 2000), 'the request went through and the input ended')
  chain.destroy()
  await once(chain, 'close')
  await new Promise((r) => setTimeout(r, 50))
  return stages
}

describe('joinStages', () => {
  test('items go through every stage in order, a slow reader holding the writer back', async () => {
    const chain = joinStages(pass(), busyStage(), pass())
    const n = 500
    let written = 0
    let held = 0
    const writing = (async () => {
      for (; written < n; written++)
        if (!chain.write(u32(written))) {
          held++
          await once(chain, 'drain')
        }
      chain.end()
    })()
    // Read slowly: a chunk at a time, a pause now and then.
    const got: Buffer[] = []
    let bytes = 0
    chain.pause()
    while (bytes < n * CHUNK) {
      const chunk = chain.read() as Buffer | null
      if (chunk) {
        got.push(chunk)
        bytes += chunk.length
      } else await new Promise((r) => setTimeout(r, 2))
    }
    await writing
    const all = Buffer.concat(got)
    assert.deepEqual(Array.from({ length: n }, (_, i) => all.readUInt32BE(i * CHUNK)), Array.from({ length: n }, (_, i) => i))
    assert.ok(held > 0, 'the writer was held back at least once')
  })

  test('destroyed after its first stage ended, the chain destroys every stage', async () => {
    const stages = await endedInput(joinStages)
    assert.deepEqual(stages.map((s) => s.destroyed), [true, true, true])
  })

  test('pumpify alone leaves the stages after an ended first stage running (why joinStages exists)', async () => {
    const stages = await endedInput((...s) => new pumpify(...s))
    assert.equal(stages[1].destroyed, false, 'if pumpify now tears these down itself, joinStages can go')
    for (const s of stages) s.destroy()
  })

  test('an error in a middle stage destroys every stage and is the chain\'s error', async () => {
    const failing = new Transform({ transform: (_chunk, _enc, cb) => cb(new Error('bad part')) })
    const stages = [pass(), failing, busyStage(), pass()]
    const chain = joinStages(...stages)
    const failed = once(chain, 'error')
    chain.write(u32(1))
    const [err] = (await failed) as [Error]
    assert.equal(err.message, 'bad part')
    assert.ok(await poll(() => stages.every((s) => s.destroyed), 2000), `destroyed: ${stages.map((s) => s.destroyed)}`)
  })
})
