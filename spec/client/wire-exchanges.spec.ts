/**
 * The Node client against the shared wire exchanges (spec/fixtures/wire/
 * exchanges.json), which the Python client's tests run too: a scripted server
 * sends the frames each exchange gives, damaged where it says, and the read
 * must end as it says, with the same request lines (NACKs, cancels) sent.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { ChecksumId, FrameType } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { scriptedServer } from '../helpers/scripted-server.js'
import { poll } from '../helpers/wait.js'
import { type ExchangeFrame, wireExchanges } from '../helpers/wire-fixtures.js'

/** The bytes of `f` on request `id`, damaged as it says. */
function exchangeBytes(f: ExchangeFrame, id: number): Buffer {
  if ('raw' in f) return Buffer.from(f.raw, 'hex')
  const payload = f.text !== undefined ? Buffer.from(f.text) : Buffer.from(JSON.stringify(f.json ?? {}))
  const bytes = Buffer.concat(encodeFrame({ type: FrameType[f.type], id, seq: f.seq, epoch: f.epoch ?? 0, payload }, ChecksumId.crc32))
  if (f.damage === 'payload') bytes[bytes.length - 1] ^= 0x10
  if (f.damage === 'header') bytes[11] ^= 0x01
  return bytes
}

const { hello, exchanges } = wireExchanges()

describe('the Node client in the shared wire exchanges', () => {
  for (const ex of exchanges) {
    test(ex.name, async (t) => {
      const seen = new Map<string, number>()
      const { url, lines } = await scriptedServer(
        t,
        (req) => {
          const nth = seen.get(req.op) ?? 0
          seen.set(req.op, nth + 1)
          return (ex.answers[req.op]?.[nth] ?? []).map((f) => exchangeBytes(f, req.id))
        },
        hello,
      )
      const client = await connect(url, { progressTimeout: 2000, retryDelays: [] })
      t.after(() => client.close())
      const outcome = await client.readFile('hello.txt').then(
        (b) => ({ bytes: b.toString() }),
        (err: { code?: string }) => ({ error: err.code }),
      )
      assert.deepEqual(outcome, ex.expect)
      assert.ok(await poll(() => lines.length >= ex.sent.length, 2000), `sent ${JSON.stringify(lines)}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
      assert.equal(lines.length, ex.sent.length, `sent ${JSON.stringify(lines)}`)
      const id = lines[0]!.id
      ex.sent.forEach((want, i) => {
        const got = lines[i]!
        assert.equal(got.id, id, `line ${i + 1} names the read`)
        for (const [k, v] of Object.entries(want)) assert.deepEqual(got[k], v, `line ${i + 1}: ${k} in ${JSON.stringify(got)}`)
      })
    })
  }
})
