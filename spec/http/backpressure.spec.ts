/**
 * HTTP responses under clients that stop reading: memory stays within the
 * server's budget, leases go with the connection, a stalled reader is closed
 * when others wait for memory, and a file that changes mid-response cuts the
 * response off instead of completing it.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { curl, type Gateway, parseHead, startGateway } from '../helpers/http.js'
import { assertSameBytes } from '../helpers/suite.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024
const BIG = 64 * MiB

/** A raw client that sends one GET and reads nothing until told. */
async function getWithoutReading(g: Gateway, path: string, t: { after: (fn: () => void) => void }): Promise<{ socket: Socket; received: () => Buffer; ended: Promise<unknown> }> {
  const socket = connect(Number(new URL(g.base).port), '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => {})
  socket.pause()
  const ended = new Promise((resolve) => socket.once('close', resolve))
  socket.write(`GET /${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
  return { socket, received: () => Buffer.concat(chunks), ended }
}

/** Until the server has stopped sending to a client that does not read (its sent count stays put). */
async function stuck(g: Gateway): Promise<void> {
  let last = -1
  let same = 0
  assert.ok(
    await poll(() => {
      const now = g.server.stats().httpBytesServed
      same = now === last ? same + 1 : 0
      last = now
      return same >= 20
    }, 20_000),
    'the server stopped sending',
  )
}

test('a client that never reads holds no more than the memory budget, and its leases are released when it goes', async (t) => {
  const g = await startGateway(t, { cacheSize: MiB, maxBuffered: 4 * MiB })
  writeFile(g.root, 'big.bin', BIG)
  const c = await getWithoutReading(g, 'big.bin', t)
  await stuck(g)
  const s = g.server.stats()
  assert.ok(s.httpBytesServed < BIG, 'not all of it was sent')
  assert.ok(s.bufferedBytes > 0, 'the stuck response holds blocks the cache does not')
  assert.ok(s.bufferedBytes <= s.bufferedLimit, `${s.bufferedBytes} held, limit ${s.bufferedLimit}`)
  c.socket.destroy()
  assert.ok(await poll(() => g.server.stats().bufferedBytes === 0), 'every lease released')
  assert.ok(await poll(() => g.server.stats().connections === 0))
})

test('a client that stopped reading is closed when another waits for memory; the other gets its file', async (t) => {
  const g = await startGateway(t, { cacheSize: MiB, maxBuffered: MiB })
  writeFile(g.root, 'big.bin', BIG)
  const other = writeFile(g.root, 'other.bin', 8 * MiB)
  const c = await getWithoutReading(g, 'big.bin', t)
  await stuck(g)
  const r = await curl([`${g.base}/other.bin`])
  assert.equal(r.code, 0, r.stderr)
  assertSameBytes(r.stdout, other)
  // A paused socket never sees its end: the server's count says it was closed.
  assert.ok(await poll(() => g.server.stats().stalledClosed >= 1), 'the stalled reader was closed')
  assert.ok(await poll(() => g.server.stats().bufferedBytes === 0), 'and what it held given back')
  c.socket.destroy()
})

test('a file that changes during a response ends it with a reset, never a complete body; the next GET has the new version', async (t) => {
  const g = await startGateway(t, { cacheSize: MiB })
  writeFile(g.root, 'big.bin', BIG)
  const c = await getWithoutReading(g, 'big.bin', t)
  await stuck(g)
  assert.equal(g.server.stats().stalledClosed, 0, 'still open: only the change may cut it off')
  const fresh = Buffer.alloc(BIG, 7)
  writeFileSync(join(g.root, 'big.bin'), fresh)
  c.socket.resume()
  await c.ended
  const got = c.received()
  const { status, headers, body } = parseHead(got)
  assert.equal(status, 200)
  assert.equal(headers['content-length'], String(BIG))
  assert.ok(body.length < BIG, `${body.length} of ${BIG} bytes: the body is cut short`)
  const after = await curl(['-i', `${g.base}/big.bin`])
  const h = parseHead(after.stdout)
  assert.notEqual(h.headers.etag, headers.etag)
  assertSameBytes(h.body, fresh)
})
