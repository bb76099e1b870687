/**
 * Stage 1: bytes → requests (and upload frames). Splits newline-delimited
 * JSON with a bounded line length. A bad line becomes an error item (the
 * connection lives); a line over the limit, or an upload frame whose header
 * fails its check, is fatal, since we cannot know where the next request
 * starts without buffering without bound.
 */
import createDebug from '../debug.js'
import { objectTransform } from 'through2'
import type { Transform } from 'node:stream'
import { error } from '../errors.js'
import { DEFAULT_MAX_REQUEST } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import { InboundDecoder } from '../protocol/inbound-decoder.js'
import { parseRequestLine, type ParsedRequest } from '../protocol/request.js'

const debug = createDebug('cacheserv:request-parser')

export interface RequestParserOptions {
  /** Longest request line in bytes, newline excluded. */
  maxRequest?: number
}

/** What the parser hands on: a request (or an error to answer), or an uploaded frame. */
export type Inbound = ParsedRequest | { id: number; frame: ReceivedFrame }

export function createRequestParser({ maxRequest = DEFAULT_MAX_REQUEST }: RequestParserOptions = {}): Transform {
  let stream: Transform
  const decoder = new InboundDecoder(maxRequest, {
    onLine(line) {
      const text = line.toString('utf8').trim()
      if (text === '') return
      let parsed: ParsedRequest
      try {
        parsed = parseRequestLine(text)
      } catch (err) {
        // Never throw from a stream callback: whatever a client sends is an answer, not a crash.
        parsed = { id: 0, error: error('EBADREQ', `request could not be read: ${(err as Error).message}`) }
      }
      debug('request %d', parsed.id)
      stream.push(parsed)
    },
    onFrame(frame) {
      stream.push({ id: frame.id, frame } satisfies Inbound)
    },
    onFatal(code, message) {
      debug('fatal: %s', message)
      stream.push({ id: 0, fatal: true, error: error(code, message) } satisfies Inbound)
    },
  })
  stream = objectTransform(
    { writableObjectMode: false, readableObjectMode: true, readableHighWaterMark: 4 },
    function (chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
      decoder.write(chunk)
      cb()
    },
    function (cb: () => void) {
      decoder.end()
      cb()
    },
  ) as unknown as Transform
  return stream
}
