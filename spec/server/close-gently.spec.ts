import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Duplex, PassThrough } from 'node:stream'
import { test } from 'node:test'
import { closeGently } from '../../lib/server/close-gently.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { within } from '../helpers/wait.js'

test('drops what the peer still sends, and closes once the peer ends its side', async () => {
  const [near, far] = duplexPair()
  const got: Buffer[] = []
  far.on('data', (c: Buffer) => got.push(c))
  // Piped, as the server's chain was, into something that takes no more.
  near.pipe(new PassThrough({ highWaterMark: 1 }))
  near.end('last answer')
  closeGently(near, { lingerMs: 60_000, flushMs: 60_000 })
  // Far more than a paused stream would buffer: read on, or this would back up.
  for (let i = 0; i < 64; i++) far.write(Buffer.alloc(64 * 1024))
  assert.equal(near.destroyed, false, 'closed while the peer was still sending')
  far.end()
  assert.ok(await within(once(near, 'close'), 2000), 'not closed after the peer ended')
  assert.equal(Buffer.concat(got).toString(), 'last answer')
  assert.equal(near.readableLength, 0, 'input was kept, not dropped')
})

test('a peer that sends more than maxInput is cut off at once', async () => {
  const [near, far] = duplexPair()
  near.end('bye')
  closeGently(near, { lingerMs: 60_000, flushMs: 60_000, maxInput: 1024 })
  far.write(Buffer.alloc(512))
  await new Promise((r) => setImmediate(r))
  assert.equal(near.destroyed, false, 'cut off under the limit')
  far.write(Buffer.alloc(1024))
  assert.ok(await within(once(near, 'close'), 2000), 'still open past the limit')
})

test('a peer that never ends its side is let go of after the linger', async () => {
  const [near] = duplexPair()
  near.end('bye')
  closeGently(near, { lingerMs: 50, flushMs: 60_000 })
  assert.ok(await within(once(near, 'close'), 2000), 'still open long after the linger')
})

test('last bytes the peer never takes are given up on after the flush limit', async () => {
  // A writable side whose writes never complete: a peer that does not read.
  const stuck = new Duplex({ read() {}, write() {} })
  stuck.write('never taken')
  stuck.end()
  closeGently(stuck, { lingerMs: 60_000, flushMs: 50 })
  assert.ok(await within(once(stuck, 'close'), 2000), 'still open long after the flush limit')
})

test('closes at once when both sides are already over', async () => {
  // No autoDestroy: the stream stays open after both sides ended, as a socket may.
  const done = new Duplex({ autoDestroy: false, read() {}, write(_c, _e, cb) { cb() } })
  done.push(null)
  done.resume()
  await once(done, 'end')
  done.end()
  await once(done, 'finish')
  closeGently(done, { lingerMs: 60_000, flushMs: 60_000 })
  assert.ok(await within(once(done, 'close'), 500), 'not closed')
})
