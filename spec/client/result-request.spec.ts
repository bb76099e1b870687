/**
 * ResultRequest, the receiving side of a request answered by one RESULT or
 * ERROR (PROGRESS frames before it go to onProgress): damaged or missing
 * frames are NACKed and the request asked again; an upload's (`once`) never
 * is, and a RESULT whose payload arrived damaged stands for what the caller
 * knows it says.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import type { RequestControl } from '../../lib/client/handlers.js'
import { ResultRequest, type ResultOptions } from '../../lib/client/result-request.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { MAX_STALLS, type Nack } from '../../lib/protocol/receive-window.js'
import { scriptedServer } from '../helpers/scripted-server.js'
import { poll } from '../helpers/wait.js'

interface Opts {
  epoch?: number
  intact?: boolean
}

function received(type: FrameType, seq: number, payload: string, { epoch = 0, intact = true }: Opts = {}): ReceivedFrame {
  return { type, id: 7, seq, payload: Buffer.from(payload), epoch, checksum: 1, intact }
}
const json = (type: FrameType, seq: number, body: unknown, o?: Opts) => received(type, seq, JSON.stringify(body), o)
const result = (seq: number, body: unknown = { ok: 1 }, o?: Opts) => json(FrameType.RESULT, seq, body, o)
const progress = (seq: number, body: unknown = {}, o?: Opts) => json(FrameType.PROGRESS, seq, body, o)
const errorFrame = (seq: number, o?: Opts) => json(FrameType.ERROR, seq, { code: 'ENOENT', message: 'no such file' }, o)

/** A request whose control records what it is asked; `outcome()` settles to its value or error. */
function request<T = unknown>(opts: ResultOptions<T> = {}) {
  const nacks: Nack[] = []
  const released: boolean[] = []
  const control: RequestControl = { nack: (n) => void nacks.push(n), release: (cancel) => void released.push(cancel) }
  const req = new ResultRequest<T>(control, opts)
  const outcome = req.promise.then(
    (value) => ({ value, error: null }),
    (error: Error & { code?: string }) => ({ value: null, error }),
  )
  const feed = (...frames: ReceivedFrame[]) => frames.forEach((f) => assert.equal(req.onFrame(f), true))
  return { req, feed, nacks, released, outcome }
}

/** Whether the request is still waiting after the microtasks of this turn. */
async function pending(p: Promise<unknown>): Promise<boolean> {
  return Promise.race([p.then(() => false), new Promise<boolean>((resolve) => setImmediate(() => resolve(true)))])
}

describe('ResultRequest', () => {
  test('RESULT resolves with its JSON, and the request is released without a cancel', async () => {
    const { feed, released, outcome } = request()
    feed(result(0, { path: 'a', size: 3 }))
    assert.deepEqual(await outcome, { value: { path: 'a', size: 3 }, error: null })
    assert.deepEqual(released, [false])
  })

  test('PROGRESS frames go to onProgress in order; one that is not JSON, or that onProgress throws on, is skipped', async () => {
    const seen: unknown[] = []
    const { feed, outcome } = request({
      onProgress: (p) => {
        seen.push(p)
        if ((p as { files?: number }).files === 2) throw new Error('a bad callback')
      },
    })
    feed(progress(0, { files: 1 }), received(FrameType.PROGRESS, 1, '{not json'), progress(2, { files: 2 }), progress(3, { files: 3 }), result(4))
    assert.deepEqual(seen, [{ files: 1 }, { files: 2 }, { files: 3 }])
    assert.deepEqual(await outcome, { value: { ok: 1 }, error: null })
  })

  test('ERROR rejects with the server\'s code and message; no cancel', async () => {
    const { feed, released, outcome } = request()
    feed(errorFrame(0))
    const { error } = await outcome
    assert.deepEqual([error?.code, error?.message], ['ENOENT', 'no such file'])
    assert.deepEqual(released, [false])
  })

  test('a RESULT that is not JSON, or a frame no request answers with, is EPROTO', async () => {
    const a = request()
    a.feed(received(FrameType.RESULT, 0, '{"size":'))
    assert.deepEqual([(await a.outcome).error?.code, (await a.outcome).error?.message], ['EPROTO', 'frame 7/0 carries invalid JSON'])
    const b = request()
    b.feed(received(FrameType.DATA, 0, 'bytes'))
    assert.deepEqual([(await b.outcome).error?.code, (await b.outcome).error?.message], ['EPROTO', 'unexpected frame type 3 in reply to request 7'])
  })

  test('a gap or a damaged frame is NACKed and the rest dropped until the resend, which answers', async () => {
    const { req, feed, nacks, outcome } = request()
    feed(progress(1))
    assert.deepEqual(nacks, [{ seq: 0, offset: 0, resync: 1 }])
    feed(result(2))
    assert.equal(await pending(req.promise), true, 'a frame of the old attempt is dropped')
    feed(result(0, { ok: 1 }, { epoch: 1, intact: false }))
    assert.deepEqual(nacks.at(-1), { seq: 0, offset: 0, resync: 2 }, 'a damaged RESULT of the resend is NACKed at once')
    feed(json(FrameType.RESYNC, 0, { resync: 2, seq: 0, offset: 0, pageSize: 1024 }, { epoch: 2 }), result(0, { ok: 2 }, { epoch: 2 }))
    assert.deepEqual(await outcome, { value: { ok: 2 }, error: null })
  })

  test('onLost NACKs while it waits, not once it is answered', async () => {
    const { req, feed, nacks } = request()
    req.onLost()
    assert.deepEqual(nacks, [{ seq: 0, offset: 0, resync: 1 }])
    feed(result(0, {}, { epoch: 1 }))
    req.onLost()
    assert.equal(nacks.length, 1)
  })

  test(`after ${MAX_STALLS} NACKs that brought nothing: ECORRUPT, and the server is told to stop`, async () => {
    const { req, nacks, released, outcome } = request()
    for (let i = 0; i <= MAX_STALLS + 1; i++) req.onLost()
    assert.equal(nacks.length, MAX_STALLS)
    assert.equal((await outcome).error?.code, 'ECORRUPT')
    assert.deepEqual(released, [true])
  })

  test('an ERROR whose payload arrived damaged ends it with ECORRUPT, no cancel: asking again would run it again', async () => {
    const { feed, nacks, released, outcome } = request()
    feed(errorFrame(0, { intact: false }))
    assert.deepEqual(nacks, [])
    assert.deepEqual([(await outcome).error?.code, (await outcome).error?.message], ['ECORRUPT', 'the server ended request 7 with an error that arrived damaged'])
    assert.deepEqual(released, [false])
  })

  test('onAbort rejects with why the connection ended; frames after are ignored', async () => {
    const { req, feed, outcome, released } = request()
    req.onAbort(Object.assign(new Error('connection closed'), { code: 'ECLOSED' }))
    feed(result(0))
    assert.equal((await outcome).error?.code, 'ECLOSED')
    assert.deepEqual(released, [])
  })
})

describe('ResultRequest for a request the server cannot run again (once)', () => {
  test('never NACKs: a frame out of sequence is taken, a damaged PROGRESS dropped, silence not answered', async () => {
    const { req, feed, nacks, outcome } = request({ once: { known: () => null } })
    req.onLost()
    feed(progress(3, {}, { intact: false }), result(5, { stored: true }))
    assert.deepEqual(nacks, [])
    assert.deepEqual(await outcome, { value: { stored: true }, error: null })
  })

  test('a RESULT whose payload arrived damaged resolves with what known() says it holds', async () => {
    const { feed, outcome, released } = request({ once: { known: () => ({ path: 'a', size: 5 }) } })
    feed(result(0, { path: 'a', size: 5 }, { intact: false }))
    assert.deepEqual(await outcome, { value: { path: 'a', size: 5 }, error: null })
    assert.deepEqual(released, [false])
  })

  test('one known() cannot vouch for yet is ECORRUPT; a damaged ERROR too', async () => {
    const a = request({ once: { known: () => null } })
    a.feed(result(0, {}, { intact: false }))
    assert.deepEqual([(await a.outcome).error?.code, (await a.outcome).error?.message], ['ECORRUPT', 'request 7: a RESULT whose payload arrived damaged, before the request was sent whole'])
    const b = request({ once: { known: () => ({}) } })
    b.feed(errorFrame(0, { intact: false }))
    assert.equal((await b.outcome).error?.code, 'ECORRUPT')
    assert.deepEqual(b.nacks, [])
  })
})

describe('ResultRequest over a lying server', () => {
  // The server answers a NACK even after it ended the request; without a cancel that resend would be sent for nothing.
  test('a request answered by a RESULT (stat) that NACKed a gap and then gets the old ERROR fails with it and cancels the resend', async (t) => {
    const error = (id: number, seq: number) => jsonFrame(FrameType.ERROR, id, seq, { code: 'EIO', message: 'disk went away' })
    const { url, lines } = await scriptedServer(t, (req) => (req.op === 'stat' ? [jsonFrame(FrameType.PROGRESS, req.id, 1, {}), error(req.id, 2)] : [])) // seq 0 is missing: a gap
    const client = await connect(url)
    t.after(() => client.close())
    await assert.rejects(client.stat('x'), { code: 'EIO' })
    assert.ok(await poll(() => lines.some((l) => l.op === 'cancel'), 2000), `no cancel; the client sent ${JSON.stringify(lines)}`)
    assert.deepEqual(lines.map((l) => [l.op, l.id]), [['stat', 1], ['nack', 1], ['cancel', 1]])
  })
})
