import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { MAX_STALLS, ReceiveWindow, type Verdict } from '../../lib/protocol/receive-window.js'
import { receiveScenarios, type ScenarioFrame, type ScenarioVerdict } from '../helpers/wire-fixtures.js'

interface Opts {
  epoch?: number
  intact?: boolean
  payload?: Buffer
}

function frame(type: number, seq: number, { epoch = 0, intact = true, payload = Buffer.alloc(0) }: Opts = {}): ReceivedFrame {
  return { type, id: 1, seq, epoch, checksum: 1, payload, intact }
}
const start = (seq = 0, o: Opts = {}) => frame(FrameType.START, seq, { payload: Buffer.from('{"size":1000}'), ...o })
const data = (seq: number, n: number, o: Opts = {}) => frame(FrameType.DATA, seq, { payload: Buffer.alloc(n, seq), ...o })
const end = (seq: number, o: Opts = {}) => frame(FrameType.END, seq, { payload: Buffer.from('{"length":1000}'), ...o })
const errorFrame = (seq: number, o: Opts = {}) => frame(FrameType.ERROR, seq, { payload: Buffer.from('{"code":"ECORRUPT","message":"x"}'), ...o })
function resyncFrame(resync: number, seq: number, o: Opts = {}): ReceivedFrame {
  const body = { resync, seq, offset: 0, pageSize: 1024 }
  return frame(FrameType.RESYNC, seq, { epoch: resync & 0xff, payload: Buffer.from(JSON.stringify(body)), ...o })
}

/** A window that has delivered START and two DATA frames of 100 bytes: next seq 3, offset 200. */
function started(): ReceiveWindow {
  const w = new ReceiveWindow()
  for (const f of [start(), data(1, 100), data(2, 100)]) assert.equal(w.accept(f), 'deliver')
  return w
}

describe('ReceiveWindow: in sequence', () => {
  test('delivers in-sequence intact frames and counts only DATA payload bytes in offset', () => {
    const w = new ReceiveWindow()
    const verdicts = [start(), data(1, 100), data(2, 50), end(3)].map((f) => w.accept(f))
    assert.deepEqual(verdicts, ['deliver', 'deliver', 'deliver', 'deliver'])
    assert.equal(w.seq, 4)
    assert.equal(w.offset, 150)
    assert.equal(w.nacks, 0)
    assert.equal(w.awaiting, false)
  })

  test('drops a duplicate (seq below the expected one) without changing seq or offset', () => {
    const w = started()
    assert.equal(w.accept(data(1, 100)), 'drop')
    assert.equal(w.accept(data(2, 100, { intact: false })), 'drop', 'a corrupt duplicate is dropped too')
    assert.equal(w.seq, 3)
    assert.equal(w.offset, 200)
    assert.equal(w.nacks, 0)
  })
})

describe('ReceiveWindow: NACKs', () => {
  test('a corrupt frame at the expected seq returns a Nack for it, with the verified offset', () => {
    const w = started()
    assert.deepEqual(w.accept(data(3, 100, { intact: false })), { seq: 3, offset: 200, resync: 1 })
    assert.equal(w.awaiting, true)
    assert.equal(w.nacks, 1)
    assert.equal(w.offset, 200, 'the corrupt bytes are not counted')
  })

  test('a gap in seq returns a Nack at the expected seq', () => {
    const w = started()
    assert.deepEqual(w.accept(data(5, 100)), { seq: 3, offset: 200, resync: 1 })
    assert.equal(w.seq, 3)
  })

  test('numbers successive NACKs 1, 2, 3 …', () => {
    const w = new ReceiveWindow()
    assert.deepEqual([w.lost(), w.lost(), w.lost()].map((n) => n.resync), [1, 2, 3])
    assert.equal(w.nacks, 3)
  })

  test('while awaiting, drops every frame, even the expected seq of the old attempt', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false }))
    for (const f of [data(3, 100), data(4, 100), data(9, 100), end(5), data(3, 100, { intact: false })]) {
      assert.equal(w.accept(f), 'drop', `seq ${f.seq}`)
    }
    assert.equal(w.awaiting, true)
    assert.equal(w.nacks, 1, 'no further NACK while awaiting')
    assert.equal(w.offset, 200)
  })

  test('resumes delivery at the seq of the RESYNC that carries the awaited number', () => {
    const w = started()
    w.accept(data(4, 100)) // gap: NACK 1 at seq 3
    assert.equal(w.accept(resyncFrame(1, 3)), 'resynced')
    assert.equal(w.awaiting, false)
    assert.equal(w.seq, 3)
    assert.equal(w.accept(data(3, 60, { epoch: 1 })), 'deliver')
    assert.equal(w.accept(data(4, 60, { epoch: 1 })), 'deliver')
    assert.equal(w.offset, 320)
    assert.equal(w.seq, 5)
  })

  test('drops a stale RESYNC (an older number), one whose payload names another number, and one nothing awaits', () => {
    const w = started()
    assert.equal(w.accept(resyncFrame(0, 3)), 'drop', 'not awaiting')
    w.accept(data(3, 100, { intact: false })) // NACK 1
    assert.equal(w.accept(resyncFrame(1, 3)), 'resynced')
    w.accept(data(3, 100, { epoch: 1, intact: false })) // NACK 2
    assert.equal(w.accept(resyncFrame(1, 3)), 'drop', 'answers NACK 1, not 2')
    assert.equal(w.accept(resyncFrame(258, 3)), 'drop', 'epoch 2 in the header, but resync 258 in the payload')
    assert.equal(w.accept(frame(FrameType.RESYNC, 3, { epoch: 2, payload: Buffer.from('not json') })), 'drop')
    assert.equal(w.awaiting, true)
    assert.equal(w.accept(resyncFrame(2, 3)), 'resynced')
    assert.equal(w.accept(data(3, 10, { epoch: 2 })), 'deliver')
    assert.equal(w.offset, 210)
  })

  test('a RESYNC may restart numbering at a different seq than the NACK asked for', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false }))
    assert.equal(w.accept(resyncFrame(1, 7)), 'resynced')
    assert.equal(w.seq, 7)
    assert.equal(w.accept(data(3, 100, { epoch: 1 })), 'drop', 'below the new seq')
    assert.equal(w.accept(data(7, 100, { epoch: 1 })), 'deliver')
  })

  test('an intact frame of the awaited epoch ends the wait when the RESYNC itself was lost', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false })) // NACK 1: epoch 1 awaited
    assert.equal(w.accept(data(3, 100, { epoch: 1 })), 'deliver')
    assert.equal(w.awaiting, false)
    assert.equal(w.offset, 300)
  })

  // Since the working-tree change to receive-window.ts: the header (epoch, seq) is trusted even when the payload is not.
  test('a corrupt RESYNC of the awaited epoch still starts the resend', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false })) // NACK 1
    assert.equal(w.accept(resyncFrame(1, 3, { intact: false })), 'resynced')
    assert.equal(w.awaiting, false)
    assert.equal(w.accept(data(3, 100, { epoch: 1 })), 'deliver')
  })

  test('a corrupt frame of the awaited epoch ends the wait and is NACKed at once', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false })) // NACK 1
    assert.deepEqual(w.accept(data(3, 100, { epoch: 1, intact: false })), { seq: 3, offset: 200, resync: 2 })
    assert.equal(w.awaiting, true)
    assert.equal(w.accept(data(3, 100, { epoch: 1 })), 'drop', 'epoch 1 is stale now: epoch 2 is awaited')
  })

  test('a frame of the awaited epoch after a gap ends the wait and asks again', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false })) // NACK 1
    assert.deepEqual(w.accept(data(4, 100, { epoch: 1 })), { seq: 3, offset: 200, resync: 2 })
    assert.equal(w.awaiting, true)
  })

  test('the awaited epoch is the low 8 bits of the resync number', () => {
    const w = new ReceiveWindow()
    for (let i = 0; i < 257; i++) w.lost()
    assert.equal(w.accept(data(0, 10, { epoch: 0 })), 'drop', 'epoch 0 is not 257 & 0xff')
    assert.equal(w.accept(data(0, 10, { epoch: 1 })), 'deliver')
  })

  test('delivers an intact ERROR even while awaiting, but drops a corrupt one', () => {
    const w = started()
    w.accept(data(3, 100, { intact: false }))
    assert.equal(w.accept(errorFrame(3, { intact: false })), 'drop')
    assert.equal(w.accept(errorFrame(8)), 'deliver')
    assert.equal(w.offset, 200)
  })
})

describe('ReceiveWindow: giving up', () => {
  test('becomes exhausted after more than MAX_STALLS NACKs with nothing delivered', () => {
    const w = started()
    for (let n = 1; n <= MAX_STALLS + 1; n++) {
      const verdict = w.accept(data(3, 100, { epoch: (n - 1) & 0xff, intact: false }))
      assert.deepEqual(verdict, { seq: 3, offset: 200, resync: n })
      assert.equal(w.exhausted, n > MAX_STALLS, `after ${n} NACKs`)
      assert.equal(w.accept(resyncFrame(n, 3)), 'resynced', 'a RESYNC alone is no progress')
    }
    assert.equal(w.exhausted, true)
  })

  test('a delivery resets the count of stalls', () => {
    const w = started()
    for (let n = 1; n <= MAX_STALLS + 1; n++) w.lost()
    assert.equal(w.exhausted, true)
    assert.equal(w.accept(resyncFrame(MAX_STALLS + 1, 3)), 'resynced')
    assert.equal(w.accept(data(3, 100, { epoch: MAX_STALLS + 1 })), 'deliver')
    assert.equal(w.exhausted, false)
    for (let n = 1; n <= MAX_STALLS; n++) w.lost()
    assert.equal(w.exhausted, false, 'MAX_STALLS NACKs since the delivery')
    w.lost()
    assert.equal(w.exhausted, true)
  })
})

/** A scenario frame of receive.json as the window sees it (see its "about"). */
function scenarioFrame(f: ScenarioFrame): ReceivedFrame {
  const type = FrameType[f.type]
  const epoch = f.epoch ?? 0
  let payload = Buffer.from('{}')
  if (f.type === 'DATA') payload = Buffer.alloc(f.length ?? 0, 0x61)
  if (f.type === 'RESYNC') payload = Buffer.from(JSON.stringify({ resync: f.resync, seq: f.seq, offset: 0, pageSize: 1024 }))
  return { type, id: 1, seq: f.seq, epoch, checksum: 1, payload, intact: f.intact ?? true }
}

const asScenario = (v: Verdict): ScenarioVerdict => (typeof v === 'object' ? { nack: { ...v } } : v)

describe('ReceiveWindow: the shared receive scenarios (spec/fixtures/wire/receive.json, also run by the Python client)', () => {
  for (const sc of receiveScenarios()) {
    test(sc.name, () => {
      const w = new ReceiveWindow()
      sc.steps.forEach((step, i) => {
        const got = 'lost' in step ? asScenario(w.lost()) : asScenario(w.accept(scenarioFrame(step.frame)))
        assert.deepEqual(got, step.verdict, `step ${i + 1}`)
      })
      assert.deepEqual({ seq: w.seq, offset: w.offset, nacks: w.nacks, awaiting: w.awaiting }, sc.end)
    })
  }
})
