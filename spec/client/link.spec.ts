/**
 * One client connection (lib/client/link.ts) against a scripted server on a
 * real loopback socket: the HELLO handshake, routing frames by id, the
 * connection-level errors, the watchdog, and a handler that throws.
 */
import assert from 'node:assert/strict'
import net from 'node:net'
import { describe, test } from 'node:test'
import type { FrameHandler } from '../../lib/client/handlers.js'
import { idleMargin, Link, type LinkOptions, type LinkStats, requestControl } from '../../lib/client/link.js'
import { ChecksumId, FrameType, PROTOCOL_VERSION } from '../../lib/protocol/constants.js'
import { encodeFrame, type Frame, jsonFrame, type ReceivedFrame } from '../../lib/protocol/frame.js'
import { loopbackServer } from '../helpers/loopback.js'
import { poll } from '../helpers/wait.js'

const HELLO = { protocol: PROTOCOL_VERSION, server: 'fake/0', checksum: 'crc32', pageSize: 1024 }

const bytes = (f: Frame) => Buffer.concat(encodeFrame(f, ChecksumId.crc32))

interface Scripted {
  url: string
  /** Request lines received, parsed. */
  lines: Record<string, unknown>[]
  /** The server side of the latest connection. */
  socket: () => net.Socket
}

/** A server that opens with `first` (a HELLO by default) and records every request line. */
async function scripted(t: Parameters<typeof loopbackServer>[0], first: Buffer | null = bytes(jsonFrame(FrameType.HELLO, 0, 0, HELLO))): Promise<Scripted> {
  const lines: Record<string, unknown>[] = []
  let last: net.Socket | null = null
  const url = await loopbackServer(t, (socket) => {
    last = socket
    socket.on('error', () => {})
    if (first) socket.write(first)
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split('\n')
      text = parts.pop()!
      for (const line of parts) lines.push(JSON.parse(line) as Record<string, unknown>)
    })
  })
  return { url, lines, socket: () => last! }
}

function options(over: Partial<LinkOptions> = {}): LinkOptions & { stats: LinkStats } {
  return { timeout: 2000, progressTimeout: 5000, damage: null, stats: { nacks: 0, lostSync: 0, timeouts: 0 }, ...over }
}

/** A handler that records what reaches it. */
function recorder(take = true): FrameHandler & { frames: ReceivedFrame[]; aborted: Error[]; lost: number; resume?: () => void } {
  const h = {
    frames: [] as ReceivedFrame[],
    aborted: [] as Error[],
    lost: 0,
    resume: undefined as (() => void) | undefined,
    onFrame(frame: ReceivedFrame, resume: () => void) {
      h.frames.push({ ...frame, payload: Buffer.from(frame.payload) })
      h.resume = resume
      return take
    },
    onLost() {
      h.lost++
    },
    onAbort(err: Error) {
      h.aborted.push(err)
    },
  }
  return h
}

async function openLink(t: { after(fn: () => unknown): void }, url: string, over: Partial<LinkOptions> = {}): Promise<Link> {
  const link = await Link.open(url, options(over))
  t.after(async () => {
    link.socket.destroy()
    await link.done
  })
  return link
}

describe('Link: the handshake', () => {
  test('resolves with the server\'s HELLO', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    assert.deepEqual(link.hello, HELLO)
    assert.equal(link.ended, null)
  })

  test('an ERROR instead of HELLO rejects with the server\'s code (a server at its connection limit)', async (t) => {
    const s = await scripted(t, bytes(jsonFrame(FrameType.ERROR, 0, 0, { code: 'EBUSY', message: 'too many connections' })))
    await assert.rejects(Link.open(s.url, options()), { code: 'EBUSY', message: 'too many connections' })
  })

  test('another protocol version, or no usable page size, is EPROTO', async (t) => {
    for (const hello of [{ ...HELLO, protocol: PROTOCOL_VERSION + 1 }, { ...HELLO, pageSize: 0 }, { ...HELLO, pageSize: 1.5 }]) {
      const s = await scripted(t, bytes(jsonFrame(FrameType.HELLO, 0, 0, hello)))
      await assert.rejects(Link.open(s.url, options()), { code: 'EPROTO' }, JSON.stringify(hello))
    }
  })

  test('something that is not a cacheserv-pipe server is EPROTO, not a hang', async (t) => {
    const s = await scripted(t, Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'.repeat(4)))
    await assert.rejects(Link.open(s.url, options()), { code: 'EPROTO', message: /not open with a HELLO/ })
  })

  test('silence is ECONNECT after the timeout; nothing listening is ECONNECT at once', async (t) => {
    const s = await scripted(t, null)
    const t0 = Date.now()
    await assert.rejects(Link.open(s.url, options({ timeout: 200 })), { code: 'ECONNECT', message: /within 200 ms/ })
    assert.ok(Date.now() - t0 >= 190)
    const probe = net.createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const port = (probe.address() as net.AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    await assert.rejects(Link.open(`tcp://127.0.0.1:${port}`, options()), { code: 'ECONNECT', message: /ECONNREFUSED/ })
  })
})

describe('Link: requests', () => {
  test('register sends the request line and routes its frames by id; frames of unknown ids are dropped', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    const a = recorder()
    const b = recorder()
    link.register(7, a, 'stat', { path: 'x' })
    link.register(8, b, 'stat', { path: 'y' })
    assert.ok(await poll(() => s.lines.length === 2))
    assert.deepEqual(s.lines, [
      { id: 7, op: 'stat', path: 'x' },
      { id: 8, op: 'stat', path: 'y' },
    ])
    s.socket().write(bytes(jsonFrame(FrameType.RESULT, 8, 0, { n: 8 })))
    s.socket().write(bytes(jsonFrame(FrameType.RESULT, 99, 0, { n: 99 })))
    s.socket().write(bytes(jsonFrame(FrameType.RESULT, 7, 0, { n: 7 })))
    assert.ok(await poll(() => a.frames.length === 1 && b.frames.length === 1))
    assert.deepEqual(JSON.parse(a.frames[0]!.payload.toString()), { n: 7 })
    assert.deepEqual(JSON.parse(b.frames[0]!.payload.toString()), { n: 8 })
  })

  test('a request registered on an ended link fails at once with why it ended, and is not sent', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    link.abortAll(new Error('gone'))
    const h = recorder()
    link.register(1, h, 'stat', { path: 'x' })
    assert.equal(h.aborted[0]?.message, 'gone')
    assert.equal(link.handlers.size, 0)
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(s.lines.length, 0)
  })

  test('requestControl sends NACKs and cancels on the request\'s link, and counts NACKs', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    const stats: LinkStats = { nacks: 0, lostSync: 0, timeouts: 0 }
    const slot = { link, released: false }
    const control = requestControl(5, slot, stats)
    link.register(5, recorder(), 'read', { path: 'f' })
    control.nack({ seq: 3, offset: 2048, resync: 1 })
    control.release(true)
    assert.ok(await poll(() => s.lines.length === 3))
    assert.deepEqual(s.lines.slice(1), [
      { id: 5, op: 'nack', seq: 3, offset: 2048, resync: 1 },
      { id: 5, op: 'cancel' },
    ])
    assert.equal(stats.nacks, 1)
    assert.equal(link.handlers.has(5), false)
  })

  test('releasing a request not yet sent marks its slot, so it is never sent', () => {
    const slot = { link: null, released: false }
    requestControl(1, slot, { nacks: 0, lostSync: 0, timeouts: 0 }).release(false)
    assert.equal(slot.released, true)
  })

  test('a handler that throws ends only its own request: EPROTO to it, cancel to the server', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    const bad: FrameHandler & { aborted: Error[] } = {
      aborted: [],
      onFrame() {
        throw new Error('consumer broke')
      },
      onLost() {},
      onAbort(err) {
        bad.aborted.push(err)
      },
    }
    const good = recorder()
    link.register(1, bad, 'stat', {})
    link.register(2, good, 'stat', {})
    s.socket().write(bytes(jsonFrame(FrameType.RESULT, 1, 0, {})))
    s.socket().write(bytes(jsonFrame(FrameType.RESULT, 2, 0, {})))
    assert.ok(await poll(() => good.frames.length === 1 && s.lines.length === 3))
    assert.match(bad.aborted[0]?.message ?? '', /request 1: consumer broke/)
    assert.deepEqual(s.lines[2], { id: 1, op: 'cancel' })
    assert.equal(link.ended, null)
  })
})

describe('Link: the connection', () => {
  test('an EBADREQ on id 0 leaves the connection up; any other connection-level ERROR aborts every request', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    const h = recorder()
    link.register(1, h, 'read', { path: 'f' })
    s.socket().write(bytes(jsonFrame(FrameType.ERROR, 0, 0, { code: 'EBADREQ', message: 'bad line' })))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(h.aborted.length, 0)
    s.socket().write(bytes(jsonFrame(FrameType.ERROR, 0, 0, { code: 'ESHUTDOWN', message: 'going' })))
    assert.ok(await poll(() => h.aborted.length === 1))
    assert.equal((h.aborted[0] as { code?: string }).code, 'ESHUTDOWN')
    await link.done
  })

  test('the server closing fails what is in flight with ECLOSED, and done resolves', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url)
    const h = recorder()
    link.register(1, h, 'read', { path: 'f' })
    assert.ok(await poll(() => s.lines.length === 1))
    s.socket().end()
    await link.done
    assert.equal((h.aborted[0] as { code?: string }).code, 'ECLOSED')
    assert.equal((link.ended as { code?: string } | null)?.code, 'ECLOSED')
  })

  test('a damaged header counts a loss of sync and the frames after it still arrive', async (t) => {
    const s = await scripted(t)
    const stats: LinkStats = { nacks: 0, lostSync: 0, timeouts: 0 }
    const link = await openLink(t, s.url, { stats })
    const h = recorder()
    link.register(1, h, 'stat', {})
    const damaged = bytes(jsonFrame(FrameType.RESULT, 1, 0, { n: 1 }))
    damaged[5] = damaged[5]! ^ 0xff
    s.socket().write(Buffer.concat([damaged, bytes(jsonFrame(FrameType.RESULT, 1, 1, { n: 2 }))]))
    assert.ok(await poll(() => h.frames.length === 1))
    assert.equal(stats.lostSync, 1)
    assert.deepEqual(JSON.parse(h.frames[0]!.payload.toString()), { n: 2 })
  })

  test('silence while requests wait: each is asked again (onLost), then ETIMEDOUT after the last try', async (t) => {
    const s = await scripted(t)
    const stats: LinkStats = { nacks: 0, lostSync: 0, timeouts: 0 }
    const link = await openLink(t, s.url, { stats, progressTimeout: 40 })
    const h = recorder()
    link.register(1, h, 'read', { path: 'f' })
    assert.ok(await poll(() => h.aborted.length === 1, 5000))
    assert.equal((h.aborted[0] as { code?: string }).code, 'ETIMEDOUT')
    assert.equal(h.lost, 4)
    assert.equal(stats.timeouts, 5)
    await link.done
  })

  test('a consumer that holds the connection is not a silent server; resume reads on', async (t) => {
    const s = await scripted(t)
    const link = await openLink(t, s.url, { progressTimeout: 40 })
    const h = recorder(false)
    link.register(1, h, 'read', { path: 'f' })
    s.socket().write(bytes(jsonFrame(FrameType.START, 1, 0, { size: 1, offset: 0, length: 1, mtimeMs: 0 })))
    assert.ok(await poll(() => h.frames.length === 1))
    await new Promise((resolve) => setTimeout(resolve, 300))
    assert.equal(h.lost, 0)
    assert.equal(h.aborted.length, 0)
    s.socket().write(bytes(jsonFrame(FrameType.END, 1, 1, { length: 1 })))
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(h.frames.length, 1, 'held: nothing more is read')
    h.resume!()
    assert.ok(await poll(() => h.frames.length === 2))
  })

  test('closesAfter: the idle timeout, or the first-request deadline until a request is sent', async (t) => {
    const s = await scripted(t, bytes(jsonFrame(FrameType.HELLO, 0, 0, { ...HELLO, idleTimeout: 30_000, requestTimeout: 10_000 })))
    const link = await openLink(t, s.url)
    assert.equal(link.closesAfter(), 10_000)
    link.send(1, 'stats')
    assert.equal(link.closesAfter(), 30_000)
    const never = await scripted(t)
    assert.equal((await openLink(t, never.url)).closesAfter(), 0)
    assert.equal(idleMargin(30_000), 5000)
    assert.equal(idleMargin(1000), 250)
  })
})
