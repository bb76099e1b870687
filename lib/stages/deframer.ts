/**
 * The receiving side of the framer: bytes → frames, for any Duplex.
 *
 * Strict (the default): a frame whose payload fails its digest is an
 * ECHECKSUM error, a header that fails its own check ends the stream with
 * EPROTO. With `resync` (what the NACK path uses), corrupt frames are handed
 * on marked `intact: false`, and a lost frame boundary becomes a `{ lost }`
 * marker in the stream, in order, after which the deframer hunts for the next
 * valid header; the receiver decides what to ask for again.
 */
import createDebug from '../debug.js'
import { Transform } from 'node:stream'
import { error } from '../errors.js'
import { FrameDecoder } from '../protocol/decoder.js'
import type { ReceivedFrame } from '../protocol/frame.js'

const debug = createDebug('cacheserv:deframer')

export interface DeframerOptions {
  /** Hand on frames whose payload failed its digest (marked `intact: false`) instead of failing. */
  passCorrupt?: boolean
  /** Survive a bad header: emit a `{ lost }` marker and hunt for the next frame. Implies passCorrupt. */
  resync?: boolean
}

/** Marks the place in the frame stream where bytes were lost. */
export interface StreamLoss {
  lost: string
}

export type Deframed = ReceivedFrame | StreamLoss

export type Deframer = Transform & {
  /** Drop a half-received frame and hunt for the next header (resync mode only). */
  reset(): void
}

export function createDeframer({ passCorrupt = false, resync = false }: DeframerOptions = {}): Deframer {
  let failure: Error | null = null
  let stream: Transform
  const decoder = new FrameDecoder(
    {
      onFrame(frame: ReceivedFrame) {
        if (!frame.intact && !passCorrupt && !resync) {
          failure ??= error('ECHECKSUM', `frame ${frame.id}/${frame.seq} failed its payload checksum`)
          return
        }
        stream.push(frame)
      },
      onInvalid(reason: string) {
        if (resync) stream.push({ lost: reason } satisfies StreamLoss)
        else failure ??= error('EPROTO', `invalid frame header (${reason}); the stream cannot be trusted`)
      },
      onResync(skipped: number) {
        debug('found a frame again after %d skipped bytes', skipped)
      },
    },
    { resync },
  )
  // node:stream, not through2, on the receiving side: through2 brings its own readable-stream,
  // ~90 ms of start-up for a short-lived tool that reads frames.
  stream = new Transform({
    writableObjectMode: false,
    readableObjectMode: true,
    transform(chunk: Buffer, _enc, cb) {
      decoder.write(chunk)
      cb(failure)
    },
    flush(cb) {
      if (!failure && !decoder.atBoundary && !resync) failure = error('EPROTO', `stream ended inside a frame (${decoder.buffered} bytes left over)`)
      cb(failure)
    },
  })
  return Object.assign(stream, { reset: () => decoder.reset() })
}
