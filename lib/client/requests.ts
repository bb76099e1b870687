/**
 * Starting a request on a client's connections: one answered by a RESULT,
 * sent again while its connection dies under it if it is safe to repeat, or
 * one answered by a stream (START, DATA, END) whose failure says whether its
 * connection died, for a caller that resumes it from where it got.
 */
import createDebug from '../debug.js'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Connections } from './connections.js'
import type { Slot } from './link.js'
import { ReadReceiver, type ReadSink } from './read-receiver.js'
import { ResultRequest } from './result-request.js'

const debug = createDebug('cacheserv:client')

/**
 * Requests sent again when their connection dies: they change nothing on the
 * server. Not write (the bytes would be stored twice, or half), nor warm and
 * evict (a second run reports what it did, not what the first one did).
 */
const REPEATABLE = new Set(['read', 'stat', 'ls', 'stats', 'tree', 'locate'])

/** Errors of a streamed request whose connection died under it: the request may be sent again. */
const retryableErrors = new WeakSet<Error>()

/** Whether `err` failed a streamed request because its connection died (see streamRequest). */
export function isRetryable(err: Error): boolean {
  return retryableErrors.has(err)
}

/** Send any command answered by one RESULT frame (PROGRESS frames before it go to `onProgress`). */
export function request<T>(conns: Connections, op: string, args: Record<string, unknown> = {}, onProgress?: (progress: unknown) => void): Promise<T> {
  if (conns.closed) return Promise.reject(conns.closed)
  if (!REPEATABLE.has(op)) return requestOnce<T>(conns, op, args, onProgress).promise
  return requestRetrying<T>(conns, op, args, onProgress)
}

/** A repeatable request, sent again after each retry delay while its connection dies under it. */
async function requestRetrying<T>(conns: Connections, op: string, args: Record<string, unknown>, onProgress?: (progress: unknown) => void): Promise<T> {
  const delays = conns.retryDelays
  for (let attempt = 0; ; attempt++) {
    const { promise, slot } = requestOnce<T>(conns, op, args, onProgress)
    try {
      return await promise
    } catch (err) {
      if (attempt >= delays.length || !conns.retryable(err as Error, slot)) throw err
      debug('%s failed (%s): again in %d ms', op, (err as Error).message, delays[attempt])
      await sleep(delays[attempt])
      if (conns.closed) throw conns.closed
    }
  }
}

function requestOnce<T>(conns: Connections, op: string, args: Record<string, unknown>, onProgress?: (progress: unknown) => void): { promise: Promise<T>; slot: Slot } {
  const id = conns.nextId()
  const slot: Slot = { link: null, released: false }
  const req = new ResultRequest<T>(conns.control(id, slot), { onProgress })
  conns.begin(id, slot, req, op, args)
  return { promise: req.promise, slot }
}

/**
 * A request answered by START, a stream of DATA and END, into `sink`; an
 * error it fails with is marked (isRetryable) when its connection died.
 */
export function streamRequest(conns: Connections, op: string, args: Record<string, unknown>, sink: ReadSink): ReadReceiver {
  const id = conns.nextId()
  const slot: Slot = { link: null, released: false }
  const receiver = new ReadReceiver(
    id,
    conns.control(id, slot),
    {
      ...sink,
      fail: (err) => {
        if (conns.retryable(err, slot)) retryableErrors.add(err)
        sink.fail(err)
      },
    },
    { stream: true },
  )
  conns.begin(id, slot, receiver, op, args)
  return receiver
}
