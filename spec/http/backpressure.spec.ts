/**
 * HTTP responses under clients that stop reading: memory stays within the
 * server's budget, leases go with the connection, a stalled reader is closed
 * when others wait for memory, and a file that changes mid-response cuts the
 * response off instead of completing it.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { curl, getWithoutReading, parseHead, startGateway, stuck } from '../helpers/http.js'
import { assertSameBytes } from '../helpers/suite.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024
const BIG = 64 * MiB

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
