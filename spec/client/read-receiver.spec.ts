/**
 * ReadReceiver, the receiving side of one read (or readv, or streamed tree):
 * only intact frames in sequence reach its sink; a gap or a damaged page is
 * NACKed and what follows discarded until the resend; START and END must
 * agree with the bytes that came, so a short or long transfer is EPROTO,
 * never a success; whatever ends the read early tells the server to stop
 * unless the server ended it already.
 */
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import type { RequestControl } from '../../lib/client/handlers.js'
import { type ReadInfo, ReadReceiver, type ReadSink } from '../../lib/client/read-receiver.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { MAX_STALLS, type Nack } from '../../lib/protocol/receive-window.js'
import { scriptedServer } from '../helpers/scripted-server.js'
import { poll } from '../helpers/wait.js'

interface Opts {
  epoch?: number
  intact?: boolean
}

function received(type: FrameType, seq: number, payload: Buffer, { epoch = 0, intact = true }: Opts = {}): ReceivedFrame {
  return { type, id: 1, seq, payload, epoch, checksum: 1, intact }
}
const json = (type: FrameType, seq: number, body: unknown, o?: Opts) => received(type, seq, Buffer.from(JSON.stringify(body)), o)
const start = (length: number, seq = 0, o?: Opts) => json(FrameType.START, seq, { size: length, offset: 0, length, mtimeMs: 5 }, o)
const data = (seq: number, text: string, o?: Opts) => received(FrameType.DATA, seq, Buffer.from(text), o)
const end = (seq: number, length: number, o?: Opts) => json(FrameType.END, seq, { length }, o)
const errorFrame = (seq: number, o?: Opts) => json(FrameType.ERROR, seq, { code: 'EIO', message: 'disk went away' }, o)
const resync = (r: number, seq: number, offset: number) => json(FrameType.RESYNC, seq, { resync: r, seq, offset, pageSize: 512 }, { epoch: r & 0xff })

/** A receiver whose control and sink record what it does; `hold` makes the sink ask to hold the connection. */
function receiver({ stream = false, hold = false, sink = {} }: { stream?: boolean; hold?: boolean; sink?: Partial<ReadSink> } = {}) {
  const nacks: Nack[] = []
  const released: boolean[] = []
  const infos: ReadInfo[] = []
  const bytes: Buffer[] = []
  const failures: Error[] = []
  let ended = 0
  const control: RequestControl = { nack: (n) => void nacks.push(n), release: (cancel) => void released.push(cancel) }
  const r = new ReadReceiver(
    1,
    control,
    {
      info: (i) => void infos.push(i),
      data: (views) => {
        for (const v of views) bytes.push(Buffer.from(v))
        return !hold
      },
      end: () => void ended++,
      fail: (err) => void failures.push(err),
      ...sink,
    },
    { stream },
  )
  const feed = (...frames: ReceivedFrame[]) => frames.map((f) => r.onFrame(f, () => {}))
  return { r, feed, nacks, released, infos, failures, text: () => Buffer.concat(bytes).toString(), ended: () => ended }
}

describe('ReadReceiver: a read that goes well', () => {
  test('START goes to the sink, then each page, then the end; the request is released without a cancel', () => {
    const { r, feed, infos, text, ended, released, failures } = receiver()
    assert.deepEqual(feed(start(10), data(1, 'hello'), data(2, 'world'), end(3, 10)), [true, true, true, true])
    assert.deepEqual(infos, [{ size: 10, offset: 0, length: 10, mtimeMs: 5 }])
    assert.deepEqual(r.info, infos[0])
    assert.equal(text(), 'helloworld')
    assert.equal(ended(), 1)
    assert.deepEqual(released, [false])
    assert.deepEqual(failures, [])
  })

  test('a sink that is full makes onFrame say so (the connection is held); the resume it was given is the client\'s', () => {
    let resumed = 0
    const held: (() => void)[] = []
    const r = new ReadReceiver(1, { nack: () => {}, release: () => {} }, {
      info: () => {},
      data: (_views, resume) => (held.push(resume), false),
      end: () => {},
      fail: () => {},
    })
    r.onFrame(start(5), () => {})
    assert.equal(r.onFrame(data(1, 'hello'), () => resumed++), false)
    held[0]()
    assert.equal(resumed, 1)
  })

  test('frames after the end are ignored; release after it sends nothing more', () => {
    const { r, feed, released, failures, ended } = receiver()
    feed(start(1), data(1, 'x'), end(2, 1), data(3, 'y'), errorFrame(4))
    r.release()
    r.onAbort(new Error('late'))
    assert.deepEqual(released, [false])
    assert.deepEqual(failures, [])
    assert.equal(ended(), 1)
  })

  test('a stream (readv, tree): START announces no length, PROGRESS is let pass, END counts the bytes', () => {
    const { feed, infos, text, ended, failures } = receiver({ stream: true })
    feed(json(FrameType.START, 0, { files: 2 }), data(1, 'abc'), json(FrameType.PROGRESS, 2, {}), data(3, 'de'), end(4, 5))
    assert.deepEqual(infos, [{ files: 2 }])
    assert.equal(text(), 'abcde')
    assert.deepEqual([ended(), failures], [1, []])
  })
})

describe('ReadReceiver: the reverse path', () => {
  test('a gap is NACKed from the first frame missing, the rest discarded until the RESYNC, then delivered from there', () => {
    const { r, feed, nacks, text, ended } = receiver()
    feed(start(15), data(1, 'hello'), data(3, 'xxxxx'), data(2, 'yyyyy'))
    assert.deepEqual(nacks, [{ seq: 2, offset: 5, resync: 1 }])
    feed(resync(1, 2, 5), data(2, 'world', { epoch: 1 }), data(3, 'again', { epoch: 1 }), end(4, 15, { epoch: 1 }))
    assert.equal(text(), 'helloworldagain')
    assert.equal(ended(), 1)
    assert.equal(r.nacks, 1)
  })

  test('a damaged page is NACKed; a duplicate is dropped without one', () => {
    const { feed, nacks, text } = receiver()
    feed(start(10), data(1, 'hello'), data(1, 'hello'), data(2, 'w0rld', { intact: false }))
    assert.deepEqual(nacks, [{ seq: 2, offset: 5, resync: 1 }])
    assert.equal(text(), 'hello')
  })

  test('onLost NACKs from where the read stands; not once it is over', () => {
    const { r, feed, nacks } = receiver()
    feed(start(10), data(1, 'hello'))
    r.onLost()
    assert.deepEqual(nacks, [{ seq: 2, offset: 5, resync: 1 }])
    feed(resync(1, 2, 5), data(2, 'world', { epoch: 1 }), end(3, 10, { epoch: 1 }))
    r.onLost()
    assert.equal(nacks.length, 1)
  })

  test(`after ${MAX_STALLS} NACKs that brought nothing, it gives up itself: ECORRUPT, and the server is told to stop`, () => {
    const { r, feed, nacks, failures, released } = receiver()
    feed(start(10))
    for (let i = 0; i <= MAX_STALLS + 1; i++) r.onLost()
    assert.equal(nacks.length, MAX_STALLS)
    assert.equal(failures.length, 1)
    assert.equal((failures[0] as Error & { code: string }).code, 'ECORRUPT')
    assert.deepEqual(released, [true])
  })

  test('an intact ERROR ends it with the server\'s error, no cancel; a damaged one of the current attempt is ECORRUPT', () => {
    const a = receiver()
    a.feed(start(10), data(1, 'hello'), errorFrame(2))
    assert.deepEqual([(a.failures[0] as Error & { code: string }).code, a.failures[0].message], ['EIO', 'disk went away'])
    assert.deepEqual(a.released, [false])
    const b = receiver()
    b.feed(start(10), errorFrame(1, { intact: false }))
    assert.equal((b.failures[0] as Error & { code: string }).code, 'ECORRUPT')
    assert.deepEqual(b.released, [false], 'the server ended it: nothing to cancel')
  })
})

describe('ReadReceiver: byte counts and frame order', () => {
  const cases: [string, ReceivedFrame[], RegExp][] = [
    ['DATA before START', [data(0, 'x')], /DATA before START/],
    ['a second START', [start(5), data(1, 'hello'), start(5, 2)], /second START frame/],
    ['more bytes than START announced', [start(3), data(1, 'hello')], /more bytes than announced/],
    ['END before every byte came', [start(10), data(1, 'hello'), end(2, 5)], /got 5 bytes, expected 10/],
    ['END that counts other bytes than came', [start(5), data(1, 'hello'), end(2, 6)], /got 5 bytes, expected 5/],
    ['START without its numbers', [json(FrameType.START, 0, { size: 5 })], /lacks size, offset, length/],
    ['PROGRESS in a read', [start(5), json(FrameType.PROGRESS, 1, {})], /PROGRESS in a read/],
    ['a RESULT in a read', [start(5), json(FrameType.RESULT, 1, {})], /unexpected frame type 5/],
  ]
  for (const [what, frames, message] of cases) {
    test(`${what}: EPROTO, and the server is told to stop`, () => {
      const { feed, failures, released, ended } = receiver()
      feed(...frames)
      assert.equal(failures.length, 1)
      assert.equal((failures[0] as Error & { code: string }).code, 'EPROTO')
      assert.match(failures[0].message, message)
      assert.deepEqual(released, [true])
      assert.equal(ended(), 0)
    })
  }

  test('a sink that cannot take the read (info or data throws) fails it with that error, and the server is told to stop', () => {
    for (const sink of [{ info: () => { throw new Error('too big for a Buffer') } }, { data: () => { throw new Error('stdout closed') } }]) {
      const { feed, failures, released } = receiver({ sink })
      feed(start(5), data(1, 'hello'), end(2, 5))
      assert.equal(failures.length, 1)
      assert.match(failures[0].message, /too big|stdout closed/)
      assert.deepEqual(released, [true])
    }
  })

  test('onAbort fails the sink once, and release after it sends no cancel', () => {
    const { r, feed, failures, released } = receiver()
    feed(start(10))
    r.onAbort(new Error('connection closed'))
    r.onAbort(new Error('again'))
    r.release()
    assert.deepEqual(failures.map((e) => e.message), ['connection closed'])
    assert.deepEqual(released, [false])
  })
})

describe('ReadReceiver over a lying server', () => {
  test('a PROGRESS frame in the place of a DATA frame fails the read (EPROTO), never shifts the bytes after it', async (t) => {
    const data = Buffer.from(Array.from({ length: 3072 }, (_, i) => i % 251))
    const { url } = await scriptedServer(t, ({ id, op }) =>
      op !== 'read'
        ? []
        : [
            jsonFrame(FrameType.START, id, 0, { size: 3072, offset: 0, length: 3072, mtimeMs: 0 }),
            { type: FrameType.DATA, id, seq: 1, payload: data.subarray(0, 1024) },
            // seq 2 should be DATA 1024..2048: a PROGRESS takes its seq, and its bytes never come.
            jsonFrame(FrameType.PROGRESS, id, 2, {}),
            { type: FrameType.DATA, id, seq: 3, payload: data.subarray(2048, 3072) },
            { type: FrameType.DATA, id, seq: 4, payload: data.subarray(2048, 3072) },
            jsonFrame(FrameType.END, id, 5, { length: 3072 }),
          ],
    )
    const client = await connect(url)
    t.after(() => client.close())
    await assert.rejects(client.readFile('x'), { code: 'EPROTO' })
  })

  // The server answers a NACK even after it ended the request; without a cancel that resend (a whole file) would be sent for nothing.
  test('a read that NACKed a gap and then gets the old ERROR fails with it and cancels the resend', async (t) => {
    const { url, lines } = await scriptedServer(t, ({ id, op }) =>
      op !== 'read'
        ? []
        : [
            jsonFrame(FrameType.START, id, 0, { size: 2048, offset: 0, length: 2048, mtimeMs: 0 }),
            { type: FrameType.DATA, id, seq: 2, payload: Buffer.alloc(1024) }, // seq 1 is missing: a gap
            jsonFrame(FrameType.ERROR, id, 3, { code: 'EIO', message: 'disk went away' }),
          ],
    )
    const client = await connect(url)
    t.after(() => client.close())
    await assert.rejects(client.readFile('x'), { code: 'EIO' })
    assert.ok(await poll(() => lines.some((l) => l.op === 'cancel'), 2000), `no cancel; the client sent ${JSON.stringify(lines)}`)
    assert.deepEqual(lines.map((l) => [l.op, l.id]), [['read', 1], ['nack', 1], ['cancel', 1]])
  })

  test('an ERROR that answers the NACK (its epoch) ends the request without a cancel', async (t) => {
    const { url, lines } = await scriptedServer(t, ({ id, op, resync }) => {
      if (op === 'read') {
        return [jsonFrame(FrameType.START, id, 0, { size: 2048, offset: 0, length: 2048, mtimeMs: 0 }), { type: FrameType.DATA, id, seq: 2, payload: Buffer.alloc(1024) }]
      }
      // The sender gives up on the resend: its ERROR carries the NACK's epoch.
      return op === 'nack' ? [jsonFrame(FrameType.ERROR, id, 0, { code: 'ECORRUPT', message: 'gave up' }, resync! & 0xff)] : []
    })
    const client = await connect(url)
    t.after(() => client.close())
    await assert.rejects(client.readFile('x'), { code: 'ECORRUPT', message: 'gave up' })
    // A cancel would follow the rejection at once; give it time to arrive.
    await sleep(200)
    assert.deepEqual(lines.map((l) => [l.op, l.id]), [['read', 1], ['nack', 1]])
  })
})
