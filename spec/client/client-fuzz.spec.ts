/**
 * Seeded fuzz of a real Client against a fake server that answers with
 * valid, damaged and nonsensical frames: every request ends, and every read
 * that resolves is byte-exact. Then the inputs that once triggered client
 * bugs. Replay a run with FUZZ_SEED=<seed> (spec/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { type Client, connect } from '../../lib/client/client.js'
import { CacheservError } from '../../lib/errors.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { loopbackServer } from '../helpers/loopback.js'
import { SEED, KNOWN_BUGS, Rng, watchProcess, within, frameBytes, countBy, show, nested, settle } from '../helpers/fuzz.js'

const FAKE_FILES = new Map<string, Buffer>()
{
  const r = new Rng(7)
  for (const [name, size] of [['zero', 0], ['one', 1], ['small', 700], ['mid', 5000], ['big', 40_000]] as const) FAKE_FILES.set(name, r.bytes(size))
}

interface FakeRequest {
  id: number
  op: string
  args: Record<string, unknown>
}

/** JSON payloads, or not even JSON, that a confused server might send where JSON is due. */
function junkJson(r: Rng): Buffer {
  return Buffer.from(
    r.pick([
      '{}', '{"length":-1}', '{"length":"many"}', '{"size":1e999}', '{"entries":5}', '{"entries":[1,{"name":5}]}', '{"resync":"x"}', `{"a":${nested(200, '1')}}`, nested(20_000, ''),
      '{"code":"EWHAT","message":"made up"}', '{"code":5,"message":{}}', '{"message":"no code"}', '{"length":1e30}', 'not json', 'null', '[]', '"x"', '5', '',
    ]),
  )
}

/**
 * The honest frames of a response: `from` is the seq to start at and `offset`
 * the DATA bytes already delivered (a resend); epoch tags every frame.
 */
function honestFrames(req: FakeRequest, page: number, from = 0, offset = 0, epoch = 0): Frame[] {
  const frames: Frame[] = []
  const add = (type: FrameType, payload: Buffer) => frames.push({ type, id: req.id, seq: from + frames.length, epoch, payload })
  const json = (type: FrameType, body: unknown) => add(type, Buffer.from(JSON.stringify(body)))
  if (req.op === 'read') {
    const file = FAKE_FILES.get(String(req.args.path))
    if (!file) {
      json(FrameType.ERROR, { code: 'ENOENT', message: 'no such file' })
      return frames
    }
    const start = Number(req.args.offset ?? 0)
    const end = req.args.length === undefined ? file.length : Math.min(file.length, start + Number(req.args.length))
    if (from === 0) json(FrameType.START, { size: file.length, offset: start, length: end - start, mtimeMs: 0 })
    for (let at = start + offset; at < end; at += page) add(FrameType.DATA, file.subarray(at, Math.min(end, at + page)))
    json(FrameType.END, { length: end - start })
  } else if (req.op === 'stat') {
    json(FrameType.RESULT, { path: req.args.path, type: 'file', size: 1, mtimeMs: 0, mtime: new Date(0).toISOString(), cachedBytes: 0, cached: false })
  } else if (req.op === 'ls') {
    json(FrameType.RESULT, { entries: [...FAKE_FILES.keys()].map((name) => ({ name, type: 'file' })) })
  } else if (req.op === 'stats') {
    json(FrameType.RESULT, { hits: 0, misses: 0 })
  } else {
    json(FrameType.ERROR, { code: 'EBADREQ', message: `unknown command ${req.op}` })
  }
  return frames
}

/**
 * Damage a response in ways a receiver can detect: bad bytes, lost, repeated
 * or reordered frames, wrong types, garbage, silence. Never a consistent lie
 * (other bytes under a valid checksum, a frame moved to another request in
 * flight, renumbered into a gap, or tagged with the epoch being waited for):
 * no receiver could tell those from the truth.
 */
function damageResponse(r: Rng, frames: Frame[], checksum: number): { out: Buffer[]; stop: 'silence' | 'close' | null; desc: string[] } {
  const out = frames.map((f) => frameBytes(f, checksum))
  const desc: string[] = []
  let stop: 'silence' | 'close' | null = null
  for (let n = r.range(1, 3); n > 0 && out.length > 0; n--) {
    const k = r.int(out.length)
    const f = frames[Math.min(k, frames.length - 1)]
    switch (r.int(12)) {
      case 0: {
        const b = Buffer.from(out[k])
        b[r.int(b.length)] ^= 1 << r.int(8)
        out[k] = b
        desc.push(`flip in frame ${k}`)
        break
      }
      case 1:
        out.splice(k, 1)
        desc.push(`drop ${k}`)
        break
      case 2:
        out.splice(r.int(out.length + 1), 0, out[k])
        desc.push(`repeat ${k}`)
        break
      case 3: {
        const j = r.int(out.length)
        ;[out[k], out[j]] = [out[j], out[k]]
        desc.push(`swap ${k} ${j}`)
        break
      }
      case 4:
        out[k] = out[k].subarray(0, r.int(out[k].length))
        desc.push(`truncate ${k}`)
        break
      case 5:
        out.splice(k, 0, r.chance(0.5) ? Buffer.concat([Buffer.from([0xc5, 0x50]), r.bytes(r.range(0, 60))]) : r.bytes(r.range(1, 300)))
        desc.push(`garbage before ${k}`)
        break
      case 6:
        out[k] = frameBytes({ ...f, type: r.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200]) }, checksum)
        desc.push(`retype ${k}`)
        break
      case 7:
        out[k] = frameBytes({ ...f, seq: f.seq + frames.length + r.int(1000) }, checksum)
        desc.push(`renumber ${k} past the end`)
        break
      case 8:
        out[k] = frameBytes({ ...f, epoch: r.range(200, 255) }, checksum)
        desc.push(`epoch of ${k}`)
        break
      case 9:
        if (f.type !== FrameType.DATA) {
          out[k] = frameBytes({ ...f, payload: junkJson(r) }, checksum)
          desc.push(`junk JSON in ${k}`)
        }
        break
      case 10:
        out.splice(k, 0, frameBytes({ type: FrameType.ERROR, id: f.id, seq: f.seq, epoch: f.epoch, payload: Buffer.from(JSON.stringify({ code: r.pick(['ENOENT', 'EIO', 'EWHAT', 'ECHANGED']), message: 'fuzz' })) }, checksum))
        desc.push(`error at ${k}`)
        break
      default:
        out.splice(k)
        stop = r.chance(0.15) ? 'close' : 'silence'
        desc.push(`${stop} from ${k}`)
    }
  }
  return { out, stop, desc }
}

interface FakeServer {
  url: string
  close(): Promise<void>
  stats: Map<string, number>
}

async function fakeServer(t: Pick<TestContext, 'after'>, seed: number): Promise<FakeServer> {
  const sockets = new Set<net.Socket>()
  const stats = new Map<string, number>()
  const rng = new Rng(seed)
  const server = net.createServer((socket) => {
    const r = rng.fork()
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    const checksum = r.pick([1, 1, 2])
    const page = r.pick([100, 1000, 4096, 16_384])
    const requests = new Map<number, FakeRequest>()
    let dead = false
    // Frames go out in order, with small random pauses, so responses interleave frame by frame.
    let queue = Promise.resolve()
    const send = (bufs: Buffer[], stop: 'silence' | 'close' | null = null) => {
      queue = queue.then(async () => {
        for (const b of bufs) {
          if (dead) return
          if (r.chance(0.3)) await sleep(r.int(3))
          if (b.length > 1 && r.chance(0.1)) {
            // split across writes
            const at = r.range(1, b.length - 1)
            socket.write(b.subarray(0, at))
            await sleep(1)
            socket.write(b.subarray(at))
          } else socket.write(b)
        }
        if (stop === 'close') {
          dead = true
          socket.destroy()
        }
      })
    }
    const hello = { protocol: 1, server: 'fake/0', checksum: checksum === 2 ? 'md5' : 'crc32', pageSize: page }
    const helloRoll = r.int(100)
    if (helloRoll < 88) send([frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum)])
    else {
      countBy(stats, 'bad hello')
      const bad = [
        () => [r.bytes(r.range(1, 200))],
        () => [frameBytes(jsonFrame(FrameType.HELLO, 0, 0, { ...hello, protocol: 2 }), checksum)],
        () => [frameBytes(jsonFrame(FrameType.START, 0, 0, hello), checksum)],
        () => [frameBytes(jsonFrame(FrameType.HELLO, 5, 0, hello), checksum)],
        () => {
          const b = frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum)
          b[b.length - 1] ^= 1
          return [b]
        },
        () => [frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello), checksum).subarray(0, r.int(40))],
        () => [frameBytes({ type: FrameType.HELLO, id: 0, seq: 0, payload: Buffer.from(r.pick(KNOWN_BUGS ? ['nope', 'null', '[]', '{}', '{"protocol":"1"}'] : ['nope', '[]', '{}', '{"protocol":"1"}'])) }, checksum)],
        () => [],
      ]
      send(r.pick(bad)(), r.chance(0.5) ? 'close' : null)
    }
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8')
      let nl: number
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        const msg = JSON.parse(line) as { id: number; op: string } & Record<string, unknown>
        const { id, op, ...args } = msg
        if (op === 'cancel') continue
        if (op === 'nack') {
          const req = requests.get(id)
          if (!req) continue
          const epoch = Number(args.resync) & 0xff
          const resend = honestFrames(req, Math.max(1, Math.floor(page / 2)), Number(args.seq), Number(args.offset), epoch)
          const roll = r.int(100)
          if (roll < 55) {
            countBy(stats, 'honest resend')
            send([frameBytes(jsonFrame(FrameType.RESYNC, id, Number(args.seq), { resync: args.resync, seq: args.seq, offset: args.offset, pageSize: page }, epoch), checksum), ...resend.map((f) => frameBytes(f, checksum))])
          } else if (roll < 70) {
            countBy(stats, 'resend without RESYNC')
            send(resend.map((f) => frameBytes(f, checksum)))
          } else if (roll < 85) {
            countBy(stats, 'damaged resend')
            const d = damageResponse(r, resend, checksum)
            send(d.out, d.stop === 'close' ? 'close' : null)
          } else countBy(stats, 'ignored NACK')
          continue
        }
        const req: FakeRequest = { id, op, args }
        requests.set(id, req)
        const roll = r.int(100)
        if (roll < 45) {
          countBy(stats, 'honest')
          send(honestFrames(req, page).map((f) => frameBytes(f, checksum)))
        } else if (roll < 95) {
          countBy(stats, 'damaged')
          const d = damageResponse(r, honestFrames(req, page), checksum)
          send(d.out, d.stop === 'close' ? 'close' : null)
        } else if (roll < 98) {
          countBy(stats, 'silent')
        } else {
          countBy(stats, 'connection error frame')
          send([frameBytes(jsonFrame(FrameType.ERROR, 0, 0, { code: 'EBADREQ', message: 'fuzz' }), checksum)])
        }
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  t.after(close)
  return { url: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`, close, stats }
}


/** A rejection as the brief of the API promises it: a CacheservError with a non-empty string code. */
function checkRejection(error: unknown, what: string, codes: Map<string, number>): void {
  assert.ok(error instanceof CacheservError, `${what}: rejects with a CacheservError, got ${(error as Error)?.stack ?? String(error)}`)
  assert.ok(typeof error.code === 'string' && error.code.length > 0, `${what}: error code is a non-empty string, got ${String(error.code)}`)
  countBy(codes, error.code)
}

const CLIENT_ROUNDS = 160
const CLIENT_PARALLEL = 8

describe('client fuzz against a fake server', () => {
  test(`every request of a real Client ends, and every read that resolves is byte-exact, over ${CLIENT_ROUNDS} connections to a lying server (seed ${SEED})`, async (t) => {
    const uncaught = watchProcess(t)
    const r = new Rng(SEED ^ 0xc11e47)
    const fake = await fakeServer(t, SEED ^ 0xfa4e)
    const codes = new Map<string, number>()
    const outcomes = new Map<string, number>()
    let verifiedBytes = 0
    const started = Date.now()

    const round = async (rr: Rng, n: number) => {
      const what = `connection ${n}`
      const c = await settle(connect(fake.url, { progressTimeout: 100, timeout: 1000 }))
      if (!c.ok) {
        checkRejection(c.error, `${what}: connect`, codes)
        countBy(outcomes, 'connect rejected')
        return
      }
      const client = c.value as Client
      const ops = Array.from({ length: rr.range(1, 6) }, (_, i): Promise<void> => {
        const label = `${what} op ${i}`
        const kind = rr.int(10)
        if (kind < 6) {
          const path = rr.chance(0.9) ? rr.pick([...FAKE_FILES.keys()]) : 'missing'
          const file = FAKE_FILES.get(path)
          const opts = rr.chance(0.4) ? { offset: rr.int((file?.length ?? 10) + 1), length: rr.int(20_000) } : {}
          return settle(client.readFile(path, opts)).then((o) => {
            if (o.ok) {
              assert.ok(file, `${label}: a read of a missing file does not succeed`)
              const start = opts.offset ?? 0
              const want = file.subarray(start, opts.length === undefined ? file.length : start + opts.length)
              assert.ok((o.value as Buffer).equals(want), `${label}: read ${path} ${JSON.stringify(opts)} resolved with the intended ${want.length} bytes (got ${(o.value as Buffer).length})`)
              verifiedBytes += want.length
              countBy(outcomes, 'read resolved')
            } else {
              checkRejection(o.error, `${label}: read ${path}`, codes)
              countBy(outcomes, 'read rejected')
            }
          })
        }
        if (kind < 7) {
          // Abandon a read part-way.
          const stream = client.read(rr.pick(['big', 'mid']))
          return new Promise<void>((resolve) => {
            stream.once('data', () => stream.destroy())
            stream.once('error', (err) => {
              checkRejection(err, `${label}: abandoned read`, codes)
              resolve()
            })
            stream.once('close', () => resolve())
          }).then(() => countBy(outcomes, 'read abandoned'))
        }
        const p = kind < 8 ? client.stat(rr.pick([...FAKE_FILES.keys()])) : kind < 9 ? client.ls('') : client.stats()
        return settle(p as Promise<unknown>).then((o) => {
          if (o.ok) countBy(outcomes, 'result resolved')
          else {
            checkRejection(o.error, `${label}: result request`, codes)
            countBy(outcomes, 'result rejected')
          }
        })
      })
      await within(Promise.all(ops), 10_000, `${what}: its ${ops.length} requests`)
      await within(client.close(), 5000, `${what}: close`)
    }

    for (let n = 0; n < CLIENT_ROUNDS; n += CLIENT_PARALLEL) {
      await Promise.all(Array.from({ length: Math.min(CLIENT_PARALLEL, CLIENT_ROUNDS - n) }, (_, i) => round(r.fork(), n + i)))
    }
    t.diagnostic(`${CLIENT_ROUNDS} connections in ${Date.now() - started} ms; outcomes: ${show(outcomes)}; ${verifiedBytes} bytes verified`)
    t.diagnostic(`server behaviour: ${show(fake.stats)}; rejection codes: ${show(codes)}`)
    assert.ok((outcomes.get('read resolved') ?? 0) > 0, 'some reads got through the damage (the check of their bytes ran)')
    assert.deepEqual(uncaught, [], 'no uncaught exception or unhandled rejection')
    assert.deepEqual(uncaught.leaked, [], 'no file handle left to the garbage collector')
  })
})


/** A fake server that answers the first request with the given frames (after a valid HELLO). */
async function oneAnswerServer(t: Pick<TestContext, 'after'>, answer: (id: number) => Frame[]): Promise<string> {
  return loopbackServer(t, (socket) => {
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, { protocol: 1, server: 'fake/0', checksum: 'crc32', pageSize: 1024 }), 1))
    let answered = false
    socket.on('data', (chunk: Buffer) => {
      if (answered) return
      answered = true
      const { id } = JSON.parse(chunk.toString().split('\n')[0]) as { id: number }
      for (const f of answer(id)) socket.write(frameBytes(f, 1))
    })
  })
}


describe('inputs the client fuzz found bugs with', () => {
  // Found by this fuzz: START and END were parsed outside any try, so the error escaped into the socket's data event.
  test('a read whose START payload is not JSON fails with EPROTO instead of throwing out of the socket handler', async (t) => {
    const uncaught = watchProcess(t)
    const url = await oneAnswerServer(t, (id) => [{ type: FrameType.START, id, seq: 0, payload: Buffer.from('not json') }])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.readFile('x')), 5000, 'the read')
    assert.deepEqual(uncaught, [], 'nothing thrown outside the read')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `the read fails with EPROTO, got ${String(!outcome.ok && (outcome.error as Error).message)}`)
  })

  test('a read whose END payload is JSON null fails with EPROTO instead of throwing out of the socket handler', async (t) => {
    const uncaught = watchProcess(t)
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.START, id, 0, { size: 0, offset: 0, length: 0, mtimeMs: 0 }), jsonFrame(FrameType.END, id, 1, null)])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.readFile('x')), 5000, 'the read')
    assert.deepEqual(uncaught, [], 'nothing thrown outside the read')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `the read fails with EPROTO, got ${String(!outcome.ok && (outcome.error as Error).message)}`)
  })

  test('ls rejects with a CacheservError when the RESULT payload is JSON null', async (t) => {
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.RESULT, id, 0, null)])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.ls('')), 5000, 'ls')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError, `ls rejects with a CacheservError, got ${outcome.ok ? 'a result' : String(outcome.error)}`)
  })

  test('an ERROR frame whose payload is not a {code, message} object rejects with a string code', async (t) => {
    const url = await oneAnswerServer(t, (id) => [jsonFrame(FrameType.ERROR, id, 0, 'x')])
    const client = await connect(url, { progressTimeout: 100 })
    t.after(() => client.close())
    const outcome = await within(settle(client.stat('x')), 5000, 'stat')
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError, 'stat rejects with a CacheservError')
    assert.equal(typeof outcome.error.code, 'string', `its code is a string, got ${String(outcome.error.code)}`)
  })

  test('connect rejects with EPROTO when the HELLO payload is JSON null', async (t) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => {})
      socket.write(frameBytes({ type: FrameType.HELLO, id: 0, seq: 0, payload: Buffer.from('null') }, 1))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const outcome = await within(settle(connect(`tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { timeout: 2000 })), 5000, 'connect')
    if (outcome.ok) await (outcome.value as Client).close()
    assert.ok(!outcome.ok && outcome.error instanceof CacheservError && outcome.error.code === 'EPROTO', `connect rejects with EPROTO, got ${outcome.ok ? 'a client' : String(outcome.error)}`)
  })
})
