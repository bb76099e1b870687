/**
 * What the client's demultiplexer routes frames to: one handler per request
 * in flight. A handler returns false from onFrame when its consumer is full;
 * the demux then holds the socket until `resume` is called.
 */
import type { ReceivedFrame } from '../protocol/frame.js'
import { CacheservError, error, type ErrorCode } from '../errors.js'

export interface FrameHandler {
  onFrame(frame: ReceivedFrame, resume: () => void): boolean
  /** The connection ended or failed before this request completed. */
  onAbort(err: Error): void
}

/** Turn an ERROR frame's payload into an error with the server's code. */
export function errorFromFrame(frame: ReceivedFrame): CacheservError {
  try {
    const { code, message } = JSON.parse(frame.payload.toString('utf8')) as { code: string; message: string }
    return new CacheservError(code as ErrorCode, String(message))
  } catch {
    return error('EPROTO', 'server sent an unreadable error frame')
  }
}

export function parseJsonPayload<T>(frame: ReceivedFrame): T {
  try {
    return JSON.parse(frame.payload.toString('utf8')) as T
  } catch {
    throw error('EPROTO', `frame ${frame.id}/${frame.seq} carries invalid JSON`)
  }
}
