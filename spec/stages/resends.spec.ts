/** Resends: the sending side's rules for NACKs, with Buffers and plain objects only. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { CommandContext, CommandIO, CommandSpec, Resume } from '../../lib/commands/context.js'
import type { Part } from '../../lib/stages/items.js'
import { Resends, resend } from '../../lib/stages/resends.js'

const reader: CommandSpec = { run: async function* () {} }
const upload: CommandSpec = { input: true, run: async function* () {} }

function resends(opts: Partial<ConstructorParameters<typeof Resends>[0]> = {}) {
  return new Resends({ pageSize: 64 * 1024, minPageSize: 1024, retries: 2, running: () => false, ...opts })
}

describe('Resends', () => {
  test('a new request goes out at the full page size, and its DATA is counted', () => {
    const r = resends()
    r.begin(1, reader, { path: 'a' })
    assert.equal(r.sent(1, 100_000), 64 * 1024)
    assert.equal(r.get(1)!.sent, 100_000)
    assert.equal(r.sent(2, 10), undefined, 'no record, no page size')
  })

  test('a NACK makes that attempt current, halves the page size and rewinds to the verified bytes', () => {
    let nacks = 0
    const r = resends({ onNack: () => nacks++ })
    r.begin(1, reader, { path: 'a', offset: 7, anything: true })
    r.sent(1, 200_000)
    const verdict = r.nack(1, 65_536, 3)
    assert.ok('record' in verdict)
    assert.deepEqual(verdict.record.args, { path: 'a', offset: 7, anything: true }, 'a resend replays every argument')
    assert.equal(verdict.record.sent, 65_536)
    assert.equal(verdict.record.pages.size, 32 * 1024)
    assert.equal(r.attempts.get(1), 3)
    assert.equal(nacks, 1)
  })

  test('NACKs at the smallest page size without progress end in ECORRUPT after the retries', () => {
    const r = resends()
    r.begin(1, reader, { path: 'a' })
    let verdict = r.nack(1, 0, 1)
    for (let n = 2; 'record' in verdict && n < 50; n++) verdict = r.nack(1, 0, n)
    assert.ok('refusal' in verdict)
    assert.equal(verdict.refusal.code, 'ECORRUPT')
    assert.match(verdict.refusal.message, /failed its checksums 2 times in a row at the smallest page size \(1024 bytes\)/)
  })

  test('an upload, a forgotten request and an unknown one are refused ECORRUPT, and no attempt changes', () => {
    const r = resends()
    r.begin(1, upload, { path: 'up' })
    r.begin(2, reader, { path: 'a' })
    r.forget(2)
    for (const id of [1, 2, 9]) {
      const verdict = r.nack(id, 0, 5)
      assert.ok('refusal' in verdict, `request ${id}`)
      assert.equal(verdict.refusal.code, 'ECORRUPT')
      assert.match(verdict.refusal.message, new RegExp(`cannot resend request ${id}`))
      assert.equal(r.attempts.get(id), undefined)
    }
  })

  test('a new request under a resent id starts a first attempt again; one NACKed before it started begins as that resend', () => {
    const r = resends()
    r.begin(1, reader, { path: 'a' })
    r.nack(1, 0, 4)
    r.begin(1, reader, { path: 'b' })
    assert.equal(r.attempts.get(1), undefined, 'the old epoch does not mark the new request stale')
    r.begin(2, reader, { path: 'c' }, 6)
    assert.equal(r.attempts.get(2), 6)
  })

  test('forgetting a request clears its attempt', () => {
    const r = resends()
    r.begin(1, reader, { path: 'a' })
    r.nack(1, 0, 2)
    r.forget(1)
    assert.equal(r.attempts.get(1), undefined)
    assert.equal(r.get(1), undefined)
  })

  test('a resend yields RESYNC, then runs the command from the receiver\'s point on the version its START announced', async () => {
    let seen: Resume | undefined
    const spec: CommandSpec = {
      run: async function* (_args, _ctx, io: CommandIO) {
        seen = io.resume
        yield { kind: 'end', body: { length: 0 } }
      },
    }
    const r = resends()
    r.begin(1, spec, { path: 'a' })
    r.identify(1, 'v1')
    r.sent(1, 50_000)
    const verdict = r.nack(1, 40_000, 9)
    assert.ok('record' in verdict)
    const parts: Part[] = []
    for await (const p of resend(verdict.record, {} as CommandContext, { seq: 5, offset: 40_000, resync: 9 }, { signal: new AbortController().signal } as CommandIO)) parts.push(p)
    assert.deepEqual(parts[0], { kind: 'resync', body: { resync: 9, seq: 5, offset: 40_000, pageSize: 32 * 1024 } })
    assert.equal(parts[1].kind, 'end')
    assert.deepEqual(seen, { seq: 5, offset: 40_000, identity: 'v1' })
  })
})
