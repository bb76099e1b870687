/**
 * Stage 4: frames → bytes. Writes each frame's header and payload digest
 * (crc32 by default, md5 selectable) in front of its payload.
 */
import createDebug from '../debug.js'
import { transform } from 'through2'
import type { Transform } from 'readable-stream'
import { checksumId } from '../protocol/checksum.js'
import type { ChecksumName } from '../protocol/constants.js'
import type { Releasable } from '../cache/block-lease.js'
import { encodeFrame } from '../protocol/frame.js'
import type { OutFrame } from './pager.js'

const debug = createDebug('cacheserv:framer')

export interface FramerOptions {
  checksum?: ChecksumName
  /**
   * A frame with a lease was framed: it is released once the output has been
   * written up to byte `end` (counted from the framer's first byte).
   */
  onLease?: (end: number, lease: Releasable) => void
}

export function createFramer({ checksum = 'crc32', onLease }: FramerOptions = {}): Transform {
  const id = checksumId(checksum)
  let out = 0
  return transform({ writableObjectMode: true, writableHighWaterMark: 2 }, function (
    this: Transform,
    frame: OutFrame,
    _enc: BufferEncoding,
    cb: (err?: Error | null) => void,
  ) {
    if (debug.enabled) debug('frame type %d id %d seq %d len %d', frame.type, frame.id, frame.seq, frame.payload.length)
    let bufs: Buffer[]
    try {
      bufs = encodeFrame(frame, id)
    } catch (err) {
      // A frame that cannot be encoded (a field out of range) ends this connection, never the process.
      frame.lease?.release()
      return cb(err as Error)
    }
    for (const buf of bufs) out += buf.length
    if (frame.lease) {
      if (onLease) onLease(out, frame.lease)
      else frame.lease.release()
    }
    for (const buf of bufs) this.push(buf)
    cb()
  })
}
