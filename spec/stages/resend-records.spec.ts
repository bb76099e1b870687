/** ResendRecords: what a connection keeps of its requests for a NACK, and how that stays bounded. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { MAX_ARG_BYTES, MAX_RECORDS, type RequestRecord, ResendRecords } from '../../lib/stages/resend-records.js'
import { PageSize } from '../../lib/stages/page-size.js'

const spec = { run: async function* () {} }
const record = (args: Record<string, unknown>): RequestRecord => ({ spec, args, pages: new PageSize({ max: 4096 }), sent: 0, memo: {} })

test('a record keeps every argument of its request, whatever the command reads', () => {
  const records = new ResendRecords(() => false)
  const args = { path: 'a/b.bin', offset: 5, length: 10, checksum: 'md5', anything: { nested: [1, 2] } }
  records.remember(7, record(args))
  assert.deepEqual(records.get(7)!.args, args)
})

test(`at most ${MAX_RECORDS} finished requests are remembered; the oldest go first and are reported`, () => {
  const forgotten: number[] = []
  const records = new ResendRecords(() => false, (id) => forgotten.push(id))
  for (let id = 1; id <= MAX_RECORDS + 3; id++) records.remember(id, record({ path: 'f' }))
  assert.equal(records.size, MAX_RECORDS)
  assert.deepEqual(forgotten, [1, 2, 3])
  assert.equal(records.get(1), undefined)
  assert.ok(records.get(MAX_RECORDS + 3))
})

test('arguments are bounded in bytes too, so a peer cannot pin a thousand 64 KiB lines', () => {
  const records = new ResendRecords(() => false)
  const big = 'x'.repeat(64 * 1024)
  for (let id = 1; id <= 200; id++) records.remember(id, record({ path: big }))
  assert.ok(records.size < 200, `kept ${records.size}`)
  assert.ok(records.size * big.length <= MAX_ARG_BYTES, 'within the byte bound')
  assert.ok(records.get(200), 'the newest is kept')
})

test('a request still running keeps its record past the bounds', () => {
  const running = new Set([1])
  const records = new ResendRecords((id) => running.has(id))
  for (let id = 1; id <= MAX_RECORDS + 10; id++) records.remember(id, record({ path: 'f' }))
  assert.ok(records.get(1), 'the running one stays')
  assert.equal(records.get(2), undefined)
})

test('remembering an id again replaces its record; forget drops it', () => {
  const records = new ResendRecords(() => false)
  records.remember(1, record({ path: 'old' }))
  records.remember(1, record({ path: 'new' }))
  assert.equal(records.size, 1)
  assert.equal(records.get(1)!.args.path, 'new')
  records.forget(1)
  assert.equal(records.get(1), undefined)
})
