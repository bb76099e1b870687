/**
 * AuthGate: holds a connection's first request, when it is `auth`, for as
 * long as the throttle says, and reads nothing behind it meanwhile. It judges
 * the token only to ask the schedule; the source still answers.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { error } from '../../lib/errors.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { AuthGate } from '../../lib/stages/auth-gate.js'
import type { Inbound } from '../../lib/stages/request-parser.js'
import { poll } from '../helpers/wait.js'

const TOKEN = 'a-token-long-enough-1234'
const auth = (id: number, token: unknown): Inbound => ({ id, op: 'auth', args: { token } })
const stat = (id: number): Inbound => ({ id, op: 'stat', args: { path: 'a' } })

/** A gate whose output is collected; `asked` records each verdict the schedule was asked about. */
function gate(t: TestContext, schedule: (ok: boolean) => number | null) {
  const asked: boolean[] = []
  const g = new AuthGate({ token: TOKEN, schedule: (ok) => (asked.push(ok), schedule(ok)) })
  const out: Inbound[] = []
  g.on('data', (req: Inbound) => out.push(req))
  t.after(() => g.destroy())
  return { g, out, asked, ids: () => out.map((r) => r.id) }
}

describe('AuthGate', () => {
  test('the right token passes at once with a schedule of 0, and the gate says authenticated', async (t) => {
    const { g, ids, asked } = gate(t, () => 0)
    assert.equal(g.authenticated, false)
    g.write(auth(1, TOKEN))
    g.write(stat(2))
    assert.ok(await poll(() => ids().length === 2, 1000))
    assert.deepEqual(ids(), [1, 2])
    assert.deepEqual(asked, [true])
    assert.equal(g.authenticated, true)
  })

  test('a wrong token is held for the time the schedule gives, with what follows it, and does not authenticate', async (t) => {
    const { g, ids, asked } = gate(t, (ok) => (ok ? 0 : 150))
    g.write(auth(1, 'wrong'))
    g.write(stat(2))
    await sleep(60)
    assert.deepEqual(ids(), [], 'held, and the request behind it too')
    assert.ok(await poll(() => ids().length === 2, 2000))
    assert.deepEqual(ids(), [1, 2], 'handed on in order: the source refuses the token')
    assert.deepEqual(asked, [false])
    assert.equal(g.authenticated, false)
  })

  test('authenticated is set only once the right token is handed on', async (t) => {
    const { g, ids } = gate(t, () => 100)
    g.write(auth(1, TOKEN))
    await sleep(30)
    assert.equal(g.authenticated, false, 'still held')
    assert.ok(await poll(() => ids().length === 1, 2000))
    assert.equal(g.authenticated, true)
  })

  test('a schedule of null holds the auth for good: nothing behind it is ever read', async (t) => {
    const { g, ids } = gate(t, () => null)
    g.write(auth(1, 'wrong'))
    for (let id = 2; id < 10; id++) g.write(stat(id))
    await sleep(100)
    assert.deepEqual(ids(), [])
    assert.equal(g.authenticated, false)
    assert.ok(g.writableLength > 0, 'the requests wait unread (the connection stops reading)')
  })

  test('a first request that is not auth passes at once, unjudged, and so does all that follows', async (t) => {
    const firsts: Inbound[] = [
      stat(1),
      { id: 1, error: error('EBADREQ', 'request is not valid JSON') },
      { id: 1, frame: { type: FrameType.DATA, id: 1, seq: 0, payload: Buffer.alloc(1), checksum: 1, epoch: 0, intact: true } },
    ]
    for (const first of firsts) {
      const { g, ids, asked } = gate(t, () => null)
      g.write(first)
      g.write(auth(2, TOKEN))
      assert.ok(await poll(() => ids().length === 2, 1000))
      assert.deepEqual(asked, [], 'only a first auth is judged')
      assert.equal(g.authenticated, false, 'a later auth does not count')
    }
  })

  test('a token that is not a string is a wrong one', async (t) => {
    const { g, asked } = gate(t, () => 0)
    g.write(auth(1, 1234))
    assert.ok(await poll(() => asked.length === 1, 1000))
    assert.deepEqual(asked, [false])
    assert.equal(g.authenticated, false)
  })

  test('destroyed while holding an auth: its timer goes with it, the auth is never handed on', async (t) => {
    const { g, ids } = gate(t, () => 200)
    g.write(auth(1, TOKEN))
    await sleep(20)
    g.destroy()
    await sleep(300)
    assert.deepEqual(ids(), [])
    assert.equal(g.authenticated, false)
  })
})
