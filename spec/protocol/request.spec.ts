import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { CacheservError } from '../../lib/errors.js'
import { MAX_ID } from '../../lib/protocol/constants.js'
import { encodeRequest, isValidId, parseRequestLine, type ParsedRequest } from '../../lib/protocol/request.js'

function assertError(parsed: ParsedRequest, id: number, message?: RegExp): void {
  assert.ok('error' in parsed, `expected an error, got ${JSON.stringify(parsed)}`)
  assert.ok(parsed.error instanceof CacheservError)
  assert.equal(parsed.error.code, 'EBADREQ')
  assert.equal(parsed.id, id)
  if (message) assert.match(parsed.error.message, message)
}

describe('parseRequestLine', () => {
  test('splits a valid request into id, op and the remaining arguments', () => {
    assert.deepEqual(parseRequestLine('{"id":1,"op":"read","path":"a/b","offset":10,"length":5}'), {
      id: 1,
      op: 'read',
      args: { path: 'a/b', offset: 10, length: 5 },
    })
    assert.deepEqual(parseRequestLine('  {"op":"ls","id":7}  '), { id: 7, op: 'ls', args: {} })
  })

  test('accepts the smallest and largest ids', () => {
    assert.equal((parseRequestLine('{"id":1,"op":"stat"}') as { id: number }).id, 1)
    const big = parseRequestLine(`{"id":${MAX_ID},"op":"stat"}`)
    assert.ok(!('error' in big))
    assert.equal(big.id, 4294967295)
  })

  test('answers invalid JSON with EBADREQ and id 0', () => {
    for (const line of ['{"id":1,"op":"read"', 'not json', '{id:1}', '']) {
      assertError(parseRequestLine(line), 0, /not valid JSON/)
    }
  })

  test('answers JSON that is not an object with EBADREQ and id 0', () => {
    for (const line of ['null', '[]', '[{"id":1,"op":"read"}]', '42', '"read"', 'true']) {
      assertError(parseRequestLine(line), 0, /must be a JSON object/)
    }
  })

  test('answers a missing or invalid id with EBADREQ and id 0', () => {
    for (const id of ['0', '-1', '1.5', String(2 ** 32), '"1"', 'null', 'true', '[1]', '1e100']) {
      assertError(parseRequestLine(`{"id":${id},"op":"read","path":"a"}`), 0, /request id/)
    }
    assertError(parseRequestLine('{"op":"read","path":"a"}'), 0, /request id/)
  })

  test('answers a missing or empty op with EBADREQ under the request id', () => {
    assertError(parseRequestLine('{"id":5,"path":"a"}'), 5, /"op"/)
    assertError(parseRequestLine('{"id":6,"op":""}'), 6, /"op"/)
    assertError(parseRequestLine('{"id":7,"op":3}'), 7, /"op"/)
  })
})

describe('isValidId', () => {
  test('accepts integers from 1 to 2^32-1 only', () => {
    for (const ok of [1, 2, 1000, MAX_ID]) assert.equal(isValidId(ok), true, String(ok))
    for (const bad of [0, -1, 1.5, 2 ** 32, NaN, Infinity, '1', null, undefined]) assert.equal(isValidId(bad), false, String(bad))
  })
})

describe('encodeRequest', () => {
  test('writes one JSON line ending in a newline that parses back to the same request', () => {
    const line = encodeRequest(3, 'read', { path: 'dir/file\nwith newline', offset: 4 })
    const text = line.toString('utf8')
    assert.ok(text.endsWith('\n'))
    assert.equal(text.indexOf('\n'), text.length - 1, 'exactly one newline, at the end')
    assert.deepEqual(parseRequestLine(text.slice(0, -1)), { id: 3, op: 'read', args: { path: 'dir/file\nwith newline', offset: 4 } })
  })

  test('writes a request without arguments', () => {
    assert.equal(encodeRequest(9, 'ls').toString(), '{"id":9,"op":"ls"}\n')
  })

  test('keeps the given id and op when the arguments also carry "id" or "op" keys', () => {
    const line = encodeRequest(3, 'stat', { path: 'a', id: 99, op: 'read' }).toString('utf8').trim()
    const parsed = parseRequestLine(line)
    assert.ok(!('error' in parsed))
    assert.equal(parsed.id, 3)
    assert.equal(parsed.op, 'stat')
  })

  test('encodes non-ASCII paths as UTF-8', () => {
    const line = encodeRequest(1, 'stat', { path: 'dé/😀' })
    assert.deepEqual(parseRequestLine(line.toString('utf8').trim()), { id: 1, op: 'stat', args: { path: 'dé/😀' } })
    assert.ok(line.includes(Buffer.from('😀', 'utf8')))
  })
})
