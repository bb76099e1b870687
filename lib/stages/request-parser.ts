/**
 * Stage 1: bytes → requests. Splits newline-delimited JSON with a bounded line
 * length. A bad line becomes an error item (the connection lives); a line over
 * the limit is fatal, since we cannot know where the next request starts
 * without buffering without bound.
 */
import createDebug from 'debug'
import { objectTransform } from 'through2'
import type { Transform } from 'node:stream'
import { error } from '../errors.js'
import { DEFAULT_MAX_REQUEST } from '../protocol/constants.js'
import { parseRequestLine } from '../protocol/request.js'

const debug = createDebug('cacheserv:request-parser')
const NEWLINE = 0x0a

export interface RequestParserOptions {
  /** Longest request line in bytes, newline excluded. */
  maxRequest?: number
}

export function createRequestParser({ maxRequest = DEFAULT_MAX_REQUEST }: RequestParserOptions = {}): Transform {
  let pending: Buffer[] = []
  let pendingBytes = 0
  let failed = false

  const emitLine = (stream: Transform, line: Buffer) => {
    const text = line.toString('utf8').trim()
    if (text === '') return
    const parsed = parseRequestLine(text)
    debug('request %o', parsed)
    stream.push(parsed)
  }

  return objectTransform({ writableObjectMode: false, readableObjectMode: true, readableHighWaterMark: 16 }, function (
    this: Transform,
    chunk: Buffer,
    _enc: BufferEncoding,
    cb: (err?: Error | null) => void,
  ) {
    if (failed) return cb()
    let start = 0
    let nl: number
    while ((nl = chunk.indexOf(NEWLINE, start)) !== -1) {
      let line = chunk.subarray(start, nl)
      if (pendingBytes > 0) {
        line = Buffer.concat([...pending, line])
        pending = []
        pendingBytes = 0
      }
      // The limit excludes the line ending, \r\n as well as \n.
      if (line.length - (line[line.length - 1] === 0x0d ? 1 : 0) > maxRequest) return tooBig(this, cb)
      emitLine(this, line)
      start = nl + 1
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start))
      pendingBytes += chunk.length - start
      if (pendingBytes > maxRequest + 1) return tooBig(this, cb) // + 1: a \r may still be followed by \n
    }
    cb()
  }, function (this: Transform, cb: (err?: Error | null) => void) {
    // A last line without a newline is still a request.
    if (!failed && pendingBytes > 0) emitLine(this, Buffer.concat(pending))
    cb()
  }) as unknown as Transform

  function tooBig(stream: Transform, cb: (err?: Error | null) => void) {
    failed = true
    pending = []
    pendingBytes = 0
    debug('request line over %d bytes: closing', maxRequest)
    stream.push({ id: 0, fatal: true, error: error('ETOOBIG', `request line exceeds ${maxRequest} bytes; requests are one JSON object per line`) })
    cb()
  }
}
