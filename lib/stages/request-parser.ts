/**
 * Stage 1: bytes → requests (and upload frames). Splits newline-delimited
 * JSON with a bounded line length. A bad line becomes an error item (the
 * connection lives); a line over the limit, or an upload frame whose header
 * fails its check, is fatal, since we cannot know where the next request
 * starts without buffering without bound.
 */
import createDebug from '../debug.js'
import { objectTransform } from 'through2'
import type { Transform } from 'readable-stream'
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

/**
 * How the client's input is coming along, for the connection's deadlines
 * (see lib/server/watchdog.ts). Times are Date.now() values.
 */
export interface InputProgress {
  /** Complete requests and upload frames so far; blank lines do not count. */
  units: number
  /** What the unparsed bytes start: part of a request line, part of an upload frame, or nothing. */
  pending: 'line' | 'frame' | null
  /** When the first byte of the pending line or frame arrived. */
  pendingSince: number
  /** When the last chunk of input arrived. */
  lastInput: number
}

export type RequestParser = Transform & { readonly progress: InputProgress }

export function createRequestParser({ maxRequest = DEFAULT_MAX_REQUEST }: RequestParserOptions = {}): RequestParser {
  let stream: Transform
  const progress: InputProgress = { units: 0, pending: null, pendingSince: 0, lastInput: 0 }
  /** Lines (blank ones too) and frames ended by the chunk being parsed: what is pending after it is new. */
  let ended = 0
  const decoder = new InboundDecoder(maxRequest, {
    onLine(line) {
      ended++
      const text = line.toString('utf8').trim()
      if (text === '') return
      progress.units++
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
      ended++
      progress.units++
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
      const now = Date.now()
      const before = { pending: decoder.pending, ended }
      decoder.write(chunk)
      progress.lastInput = now
      progress.pending = decoder.pending
      if (progress.pending !== before.pending || ended !== before.ended) progress.pendingSince = now
      cb()
    },
    function (cb: () => void) {
      decoder.end()
      cb()
    },
  )
  return Object.defineProperty(stream, 'progress', { value: progress, enumerable: true }) as RequestParser
}
