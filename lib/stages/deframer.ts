/**
 * The receiving side of the framer: bytes → verified frames, for any Duplex.
 * A frame whose payload fails its digest is an ECHECKSUM error (the NACK path
 * will turn it into a resend); a header that fails its own check ends the
 * stream with EPROTO, since no later byte can be trusted.
 */
import { objectTransform } from 'through2'
import type { Transform } from 'node:stream'
import { error } from '../errors.js'
import { FrameDecoder } from '../protocol/decoder.js'
import type { ReceivedFrame } from '../protocol/frame.js'

export interface DeframerOptions {
  /** Hand on frames whose payload failed its digest (marked `intact: false`) instead of failing. */
  passCorrupt?: boolean
}

export function createDeframer({ passCorrupt = false }: DeframerOptions = {}): Transform {
  let failure: Error | null = null
  let stream: Transform
  const decoder = new FrameDecoder({
    onFrame(frame: ReceivedFrame) {
      if (!frame.intact && !passCorrupt) {
        failure ??= error('ECHECKSUM', `frame ${frame.id}/${frame.seq} failed its payload checksum`)
        return
      }
      stream.push(frame)
    },
    onInvalid(reason: string) {
      failure ??= error('EPROTO', `invalid frame header (${reason}); the stream cannot be trusted`)
    },
  })
  stream = objectTransform({ writableObjectMode: false, readableObjectMode: true }, function (
    chunk: Buffer,
    _enc: BufferEncoding,
    cb: (err?: Error | null) => void,
  ) {
    decoder.write(chunk)
    cb(failure)
  }, function (cb: (err?: Error | null) => void) {
    if (!failure && !decoder.atBoundary) failure = error('EPROTO', `stream ended inside a frame (${decoder.buffered} bytes left over)`)
    cb(failure)
  }) as unknown as Transform
  return stream
}
