/**
 * What the client routes frames to: one handler per request in flight. A
 * frame's payload lies in the client's reused receive buffer, valid only
 * during onFrame. A handler returns false when its consumer is full; the
 * client then stops reading the socket until `resume` is called.
 */
import type { ReceivedFrame } from '../protocol/frame.js'
import { MAX_STALLS, type Nack } from '../protocol/receive-window.js'
import { CacheservError, error, type ErrorCode } from '../errors.js'

export interface FrameHandler {
  onFrame(frame: ReceivedFrame, resume: () => void): boolean
  /** The connection went quiet while this request waited: ask for it again from where it stands. */
  onLost(): void
  /** The connection ended or failed before this request completed. */
  onAbort(err: Error): void
}

/** What a handler may ask of its client. */
export interface RequestControl {
  /** Send a NACK for this request. */
  nack(nack: Nack): void
  /** Forget this request; with `cancelOnServer`, also tell the server to stop it. */
  release(cancelOnServer: boolean): void
}

/** The receiver's own verdict when NACKs stop bringing anything back. */
export function giveUp(nack: Nack): CacheservError {
  return error('ECORRUPT', `gave up after ${MAX_STALLS} requests to resend brought no intact frame (stuck at byte ${nack.offset})`)
}

/** The server ended a request with an error we could not read (its payload arrived damaged). */
export function unreadableError(frame: ReceivedFrame): CacheservError {
  return error('ECORRUPT', `the server ended request ${frame.id} with an error that arrived damaged`)
}

/** Turn an ERROR frame's payload into an error with the server's code. */
export function errorFromFrame(frame: ReceivedFrame): CacheservError {
  let body: unknown
  try {
    body = JSON.parse(frame.payload.toString('utf8'))
  } catch {
    return error('EPROTO', 'server sent an unreadable error frame')
  }
  const { code, message } = (body ?? {}) as { code?: unknown; message?: unknown }
  if (typeof code !== 'string' || !/^E[A-Z0-9]+$/.test(code)) return error('EPROTO', 'server sent an error frame without a code')
  return new CacheservError(code as ErrorCode, typeof message === 'string' ? message : code)
}

/** Parse a JSON payload that must be an object with these numeric fields; EPROTO otherwise. */
export function parseObject<T>(frame: ReceivedFrame, numbers: string[]): T {
  const value = parseJsonPayload<Record<string, unknown>>(frame)
  if (value === null || typeof value !== 'object' || numbers.some((k) => !Number.isSafeInteger(value[k]) || (value[k] as number) < 0)) {
    throw error('EPROTO', `frame ${frame.id}/${frame.seq} lacks ${numbers.join(', ')}`)
  }
  return value as T
}

export function parseJsonPayload<T>(frame: ReceivedFrame): T {
  try {
    return JSON.parse(frame.payload.toString('utf8')) as T
  } catch {
    throw error('EPROTO', `frame ${frame.id}/${frame.seq} carries invalid JSON`)
  }
}
