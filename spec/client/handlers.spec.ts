/**
 * What every request handler of the client reads frames with: an ERROR
 * frame's code and message (any code of the wire's shape, known or not;
 * anything else EPROTO), JSON payloads that must be objects with
 * non-negative integer fields (EPROTO naming the frame), and the receiver's
 * own ECORRUPT verdicts.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { errorFromFrame, giveUp, parseJsonPayload, parseObject, unreadableError } from '../../lib/client/handlers.js'
import { CacheservError } from '../../lib/errors.js'
import { ChecksumId, FrameType } from '../../lib/protocol/constants.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { MAX_STALLS } from '../../lib/protocol/receive-window.js'

function frame(payload: string, { type = FrameType.RESULT, id = 3, seq = 4 }: { type?: number; id?: number; seq?: number } = {}): ReceivedFrame {
  return { type, id, seq, payload: Buffer.from(payload), checksum: ChecksumId.crc32, epoch: 0, intact: true }
}

const error = (payload: string) => errorFromFrame(frame(payload, { type: FrameType.ERROR }))

describe('errorFromFrame', () => {
  test('carries the server\'s code and message', () => {
    const err = error('{"code":"ENOENT","message":"no such file or directory: a"}')
    assert.ok(err instanceof CacheservError)
    assert.deepEqual([err.code, err.message], ['ENOENT', 'no such file or directory: a'])
  })

  test('keeps a code it does not know, as long as it has the shape of one; without a message, the code is the message', () => {
    assert.deepEqual([error('{"code":"ENEWS2","message":"later"}').code, error('{"code":"ENEWS2"}').message], ['ENEWS2', 'ENEWS2'])
    assert.equal(error('{"code":"EIO","message":7}').message, 'EIO')
  })

  test('a payload that is not JSON is EPROTO: unreadable', () => {
    assert.deepEqual([error('{"code":').code, error('{"code":').message], ['EPROTO', 'server sent an unreadable error frame'])
  })

  test('JSON without a code of the wire\'s shape is EPROTO: no code', () => {
    for (const payload of ['null', '"ENOENT"', '5', '[]', '{}', '{"code":5}', '{"code":"enoent"}', '{"code":"E"}', '{"code":"NOENT"}', '{"code":"E-1"}', '{"code":"ENOENT\\n"}']) {
      const err = error(payload)
      assert.deepEqual([err.code, err.message], ['EPROTO', 'server sent an error frame without a code'], payload)
    }
  })
})

describe('parseObject', () => {
  test('gives the object when each named field is a non-negative safe integer, whatever else it holds', () => {
    assert.deepEqual(parseObject(frame('{"size":10,"offset":0,"length":10,"mtimeMs":1.5}'), ['size', 'offset', 'length']), { size: 10, offset: 0, length: 10, mtimeMs: 1.5 })
    assert.deepEqual(parseObject(frame('{"files":[]}'), []), { files: [] })
  })

  test('a named field missing, negative, fractional, too large or not a number is EPROTO naming the frame and the fields', () => {
    for (const payload of ['{"length":1}', '{"size":-1,"length":1}', '{"size":1.5,"length":1}', '{"size":1e999,"length":1}', `{"size":${2 ** 53},"length":1}`, '{"size":"1","length":1}', '{"size":null,"length":1}']) {
      assert.throws(() => parseObject(frame(payload), ['size', 'length']), { code: 'EPROTO', message: 'frame 3/4 lacks size, length' }, payload)
    }
  })

  test('a payload that is not an object is EPROTO, even with no field named', () => {
    for (const payload of ['null', '7', '"x"', 'true']) assert.throws(() => parseObject(frame(payload), []), { code: 'EPROTO' }, payload)
    assert.throws(() => parseObject(frame('{'), ['length']), { code: 'EPROTO', message: 'frame 3/4 carries invalid JSON' })
  })
})

describe('parseJsonPayload', () => {
  test('any JSON value; invalid JSON is EPROTO naming the frame', () => {
    assert.deepEqual(parseJsonPayload(frame('{"a":[1,null]}')), { a: [1, null] })
    assert.equal(parseJsonPayload(frame('null')), null)
    assert.throws(() => parseJsonPayload(frame('not json', { id: 9, seq: 0 })), { code: 'EPROTO', message: 'frame 9/0 carries invalid JSON' })
    assert.throws(() => parseJsonPayload(frame('')), { code: 'EPROTO' })
  })
})

describe('the receiver\'s own verdicts', () => {
  test('giveUp: ECORRUPT, saying how many resends brought nothing and at which byte', () => {
    const err = giveUp({ seq: 5, offset: 123_456, resync: 40 })
    assert.equal(err.code, 'ECORRUPT')
    assert.equal(err.message, `gave up after ${MAX_STALLS} requests to resend brought no intact frame (stuck at byte 123456)`)
  })

  test('unreadableError: ECORRUPT naming the request whose ERROR arrived damaged', () => {
    const err = unreadableError({ ...frame('x', { type: FrameType.ERROR, id: 12 }), intact: false })
    assert.deepEqual([err.code, err.message], ['ECORRUPT', 'the server ended request 12 with an error that arrived damaged'])
  })
})
