/**
 * Refusing a connection over the limit, over real loopback sockets: the
 * peer gets one ERROR EBUSY frame on id 0 and a clean end, and neither a
 * peer that keeps sending nor one that never closes holds the socket long.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { describe, test, type TestContext } from 'node:test'
import { type ChecksumName, FrameType } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { BUSY_INPUT_MAX, BUSY_LINGER_MS, refuseBusy } from '../../lib/server/refuse-busy.js'
import { loopbackServer } from '../helpers/loopback.js'
import { json } from '../helpers/raw.js'
import { within } from '../helpers/wait.js'

/** A listener that refuses every connection as busy; each connect resolves with the client socket, the server's side and the frames received. */
async function refusing(t: TestContext, serving: number, checksum: ChecksumName) {
  const sides: net.Socket[] = []
  const url = await loopbackServer(t, (socket) => {
    sides.push(socket)
    refuseBusy(socket, serving, checksum)
  })
  const port = Number(new URL(url).port)
  return async () => {
    const client = net.connect({ host: '127.0.0.1', port })
    t.after(() => void client.destroy())
    client.on('error', () => {})
    const frames: ReceivedFrame[] = []
    const invalid: string[] = []
    const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (why) => invalid.push(why) })
    client.on('data', (c: Buffer) => decoder.write(c))
    await once(client, 'connect')
    while (sides.length === 0) await new Promise((r) => setImmediate(r))
    return { client, side: sides.shift()!, frames, invalid }
  }
}

describe('refuseBusy', () => {
  for (const checksum of ['crc32', 'md5'] as const) {
    test(`answers one ERROR EBUSY on id 0 (${checksum}), then ends its side and closes once the peer ends`, async (t) => {
      const connect = await refusing(t, 7, checksum)
      const { client, side, frames, invalid } = await connect()
      assert.ok(await within(once(client, 'end'), 5000), 'the server did not end its side')
      assert.deepEqual(invalid, [])
      assert.equal(frames.length, 1)
      assert.equal(frames[0].type, FrameType.ERROR)
      assert.equal(frames[0].id, 0)
      const body = json(frames[0])
      assert.equal(body.code, 'EBUSY')
      assert.match(body.message, /serves 7 connections, its limit/)
      client.end()
      assert.ok(await within(once(side, 'close'), 5000), 'not closed after the peer ended')
    })
  }

  test('reads and drops what the peer sends, and cuts off a peer that sends more than 64 KiB', async (t) => {
    const connect = await refusing(t, 1, 'crc32')
    const { client, side } = await connect()
    const sent = 16 * 1024 * 1024
    client.write(Buffer.alloc(sent))
    assert.ok(await within(once(side, 'close'), 5000), 'the server side is still open')
    assert.ok(side.bytesRead > BUSY_INPUT_MAX, `read ${side.bytesRead} bytes: the input was not drained`)
    assert.ok(side.bytesRead < sent, 'read all the peer sent: no limit on the input')
  })

  test('lets go of a peer that never closes its side after the linger', async (t) => {
    const connect = await refusing(t, 1, 'crc32')
    const { side } = await connect()
    assert.ok(await within(once(side, 'close'), BUSY_LINGER_MS + 4000), 'still open long after the linger')
  })
})
