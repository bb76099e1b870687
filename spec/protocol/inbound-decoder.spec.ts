/**
 * InboundDecoder: request lines and upload frames from one byte stream, in
 * any chunking. Here: lines trickled in a byte at a time, as a slow or
 * hostile peer sends them.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { InboundDecoder } from '../../lib/protocol/inbound-decoder.js'

function decoder(maxRequest = 64 * 1024) {
  const lines: string[] = []
  const fatal: string[] = []
  const d = new InboundDecoder(maxRequest, {
    onLine: (line) => lines.push(line.toString()),
    onFrame: () => assert.fail('no frame expected'),
    onFatal: (code) => fatal.push(code),
  })
  return { d, lines, fatal }
}

describe('InboundDecoder, lines in tiny pieces', () => {
  test('a 40 KB line sent a byte at a time, then another in one piece, arrive whole and in order', () => {
    const { d, lines, fatal } = decoder()
    const long = JSON.stringify({ id: 1, op: 'stat', path: 'p'.repeat(40_000) })
    for (const byte of Buffer.from(long + '\r\n')) d.write(Buffer.from([byte]))
    d.write(Buffer.from('{"id":2,"op":"stats"}\n'))
    assert.deepEqual(fatal, [])
    assert.deepEqual(lines, [long, '{"id":2,"op":"stats"}'])
  })

  test('a line over the limit sent a byte at a time still fails with ETOOBIG', () => {
    const { d, lines, fatal } = decoder(1000)
    for (let i = 0; i < 1500 && fatal.length === 0; i++) d.write(Buffer.from('x'))
    assert.deepEqual(fatal, ['ETOOBIG'])
    assert.deepEqual(lines, [])
  })
})
