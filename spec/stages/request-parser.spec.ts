import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import type { ParsedRequest } from '../../lib/protocol/request.js'
import { createRequestParser, type RequestParserOptions } from '../../lib/stages/request-parser.js'

/** Write the chunks into a fresh parser, end it, and collect what comes out. */
async function parse(chunks: (string | Buffer)[], opts?: RequestParserOptions): Promise<ParsedRequest[]> {
  const parser = createRequestParser(opts)
  const out = parser.toArray()
  for (const c of chunks) parser.write(typeof c === 'string' ? Buffer.from(c) : c)
  parser.end()
  return (await out) as ParsedRequest[]
}

const req = (id: number, op: string, args: Record<string, unknown> = {}) => ({ id, op, args })
const line = (id: number, op: string, args: Record<string, unknown> = {}) => JSON.stringify({ id, op, ...args }) + '\n'

function byteByByte(text: string): Buffer[] {
  const b = Buffer.from(text)
  return [...b].map((x) => Buffer.from([x]))
}

function isFatalTooBig(item: ParsedRequest | undefined): void {
  assert.ok(item && 'error' in item, 'an error item')
  assert.equal(item.id, 0)
  assert.equal(item.fatal, true)
  assert.equal(item.error.code, 'ETOOBIG')
}

describe('createRequestParser', () => {
  test('yields every request of a chunk holding several lines, in order', async () => {
    const text = line(1, 'read', { path: 'a' }) + line(2, 'stat', { path: 'b' }) + line(3, 'ls')
    assert.deepEqual(await parse([text]), [req(1, 'read', { path: 'a' }), req(2, 'stat', { path: 'b' }), req(3, 'ls')])
  })

  test('joins a request split across chunks', async () => {
    const text = line(4, 'read', { path: 'some/long/path', offset: 3 })
    const expected = [req(4, 'read', { path: 'some/long/path', offset: 3 })]
    for (const cut of [1, 10, text.length - 1]) {
      assert.deepEqual(await parse([text.slice(0, cut), text.slice(cut)]), expected, `cut at ${cut}`)
    }
    assert.deepEqual(await parse([text.slice(0, 5), text.slice(5, 9), text.slice(9, 20), text.slice(20)]), expected)
  })

  test('joins requests fed byte by byte, multi-byte UTF-8 characters included', async () => {
    const text = line(1, 'stat', { path: 'dé/😀' }) + line(2, 'ls', { path: 'ü' })
    assert.deepEqual(await parse(byteByByte(text)), [req(1, 'stat', { path: 'dé/😀' }), req(2, 'ls', { path: 'ü' })])
  })

  test('tolerates CRLF line endings', async () => {
    const text = '{"id":1,"op":"ls"}\r\n{"id":2,"op":"stat","path":"x"}\r\n'
    assert.deepEqual(await parse([text]), [req(1, 'ls'), req(2, 'stat', { path: 'x' })])
    assert.deepEqual(await parse(byteByByte(text)), [req(1, 'ls'), req(2, 'stat', { path: 'x' })])
  })

  test('ignores blank and whitespace-only lines', async () => {
    const text = '\n\n  \n' + line(1, 'ls') + '\r\n\t\n' + line(2, 'ls') + '\n'
    assert.deepEqual(await parse([text]), [req(1, 'ls'), req(2, 'ls')])
  })

  test('yields a final line that has no newline when the input ends', async () => {
    assert.deepEqual(await parse([line(1, 'ls') + '{"id":2,', '"op":"stat"}']), [req(1, 'ls'), req(2, 'stat')])
  })

  test('yields nothing for an empty input or a trailing blank fragment', async () => {
    assert.deepEqual(await parse([]), [])
    assert.deepEqual(await parse([line(1, 'ls'), '   ']), [req(1, 'ls')])
  })

  test('answers a malformed line with a non-fatal EBADREQ item and goes on', async () => {
    const out = await parse(['not json\n' + line(2, 'ls')])
    assert.equal(out.length, 2)
    const [bad, good] = out
    assert.ok('error' in bad)
    assert.equal(bad.error.code, 'EBADREQ')
    assert.equal(bad.id, 0)
    assert.notEqual(bad.fatal, true)
    assert.deepEqual(good, req(2, 'ls'))
  })

  test('accepts a line of exactly maxRequest bytes', async () => {
    const maxRequest = 64
    const base = '{"id":1,"op":"stat","path":""}'
    const text = base.slice(0, -2) + 'x'.repeat(maxRequest - base.length) + '"}'
    assert.equal(text.length, maxRequest)
    assert.deepEqual(await parse([text + '\n'], { maxRequest }), [req(1, 'stat', { path: 'x'.repeat(maxRequest - base.length) })])
    assert.deepEqual(await parse(byteByByte(text + '\n'), { maxRequest }), [req(1, 'stat', { path: 'x'.repeat(maxRequest - base.length) })])
  })

  test('answers a line over maxRequest with one fatal ETOOBIG item and nothing after, in one chunk', async () => {
    const long = JSON.stringify({ id: 9, op: 'stat', path: 'y'.repeat(100) }) + '\n'
    const out = await parse([line(1, 'ls') + long + line(2, 'ls') + line(3, 'ls')], { maxRequest: 64 })
    assert.equal(out.length, 2)
    assert.deepEqual(out[0], req(1, 'ls'))
    isFatalTooBig(out[1])
  })

  test('answers a line over maxRequest with one fatal ETOOBIG item and nothing after, across chunks', async () => {
    const long = JSON.stringify({ id: 9, op: 'stat', path: 'y'.repeat(100) }) + '\n'
    const out = await parse([long.slice(0, 40), long.slice(40, 80), long.slice(80), line(2, 'ls'), line(3, 'ls')], { maxRequest: 64 })
    assert.equal(out.length, 1)
    isFatalTooBig(out[0])
  })

  test('answers an endless line without a newline with ETOOBIG before the input ends', async () => {
    const parser = createRequestParser({ maxRequest: 100 })
    const items: ParsedRequest[] = []
    parser.on('data', (item: ParsedRequest) => items.push(item))
    for (let i = 0; i < 20; i++) parser.write(Buffer.from('z'.repeat(10)))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(items.length, 1)
    isFatalTooBig(items[0])
    parser.end(Buffer.from('\n' + line(1, 'ls')))
    await new Promise((resolve) => parser.on('end', resolve))
    assert.equal(items.length, 1)
  })
})
