/**
 * Stage 4: frames → bytes. Writes each frame's header and payload digest
 * (crc32 by default, md5 selectable) in front of its payload.
 */
import createDebug from '../debug.js'
import { transform } from 'through2'
import type { Transform } from 'node:stream'
import { checksumId } from '../protocol/checksum.js'
import type { ChecksumName } from '../protocol/constants.js'
import { encodeFrame, type Frame } from '../protocol/frame.js'

const debug = createDebug('cacheserv:framer')

export interface FramerOptions {
  checksum?: ChecksumName
}

export function createFramer({ checksum = 'crc32' }: FramerOptions = {}): Transform {
  const id = checksumId(checksum)
  return transform({ writableObjectMode: true, writableHighWaterMark: 2 }, function (
    this: Transform,
    frame: Frame,
    _enc: BufferEncoding,
    cb: (err?: Error | null) => void,
  ) {
    if (debug.enabled) debug('frame type %d id %d seq %d len %d', frame.type, frame.id, frame.seq, frame.payload.length)
    let bufs: Buffer[]
    try {
      bufs = encodeFrame(frame, id)
    } catch (err) {
      // A frame that cannot be encoded (a field out of range) ends this connection, never the process.
      return cb(err as Error)
    }
    for (const buf of bufs) this.push(buf)
    cb()
  }) as unknown as Transform
}
