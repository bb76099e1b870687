/**
 * readEntries from the client's side: BatchReads (read-batches.ts) driven
 * over a client's connections, each batch one `readv` request whose stream
 * is cut into entries here, and a batch whose connection died asked for
 * again after the client's retry delays.
 */
import { error } from '../errors.js'
import { MAX_READV_PATHS } from '../protocol/constants.js'
import { type Entry, EntryDecoder } from '../protocol/readv-entry.js'
import type { Connections } from './connections.js'
import { type BatchEntry, type BatchItem, BatchReads } from './read-batches.js'
import type { ReadReceiver } from './read-receiver.js'
import { isRetryable, streamRequest } from './requests.js'

/** Paths a readMany over the socket asks for in one readv, at least. */
export const READV_BATCH = 256

/**
 * Each item's entry, in order, read in batches of `batch` (at most
 * MAX_READV_PATHS) with `highWater` bytes of untaken entries before the
 * connection is held. A bad `batch` or `highWater` fails the first next()
 * with EBADREQ.
 */
export function readEntries(
  conns: Connections,
  items: Iterable<string | BatchItem> | AsyncIterable<string | BatchItem>,
  { batch = READV_BATCH, highWater }: { batch?: number; highWater?: number } = {},
): AsyncGenerator<BatchEntry, void, void> {
  if (!Number.isSafeInteger(batch) || batch < 1) return refused(error('EBADREQ', `readEntries: batch must be a positive integer, not ${batch}`))
  if (highWater !== undefined && !(highWater >= 0)) return refused(error('EBADREQ', `readEntries: highWater must be 0 or more bytes, not ${highWater}`))
  const delays = conns.retryDelays
  const batches = new BatchReads(
    (items, onEntry, hold, onHeld) => sendReadv(conns, items, onEntry, hold, onHeld),
    (err, attempt) => (attempt < delays.length && isRetryable(err) ? delays[attempt] : null),
  )
  return batches.read(items, { batch: Math.min(batch, MAX_READV_PATHS), highWater, maxRequest: () => conns.link.hello.maxRequest })
}

/** One readv request: its entries to `onEntry` as they arrive whole (see SendBatch in read-batches.ts). */
export function sendReadv(
  conns: Connections,
  paths: (string | BatchItem)[],
  onEntry: (entry: Entry) => void,
  hold: () => boolean,
  onHeld: (resume: () => void) => void,
): { done: Promise<void>; cancel(): void } {
  let receiver!: ReadReceiver
  const done = new Promise<void>((resolve, reject) => {
    const decoder = new EntryDecoder(onEntry)
    receiver = streamRequest(conns, 'readv', { paths }, {
      info: () => {},
      data: (views, resume) => {
        for (const v of views) decoder.push(v)
        if (!hold()) return true
        onHeld(resume)
        return false
      },
      end: () => (decoder.atBoundary ? resolve() : reject(error('EPROTO', `readv ${receiver.id}: the stream ended inside an entry`))),
      fail: reject,
    })
  })
  return { done, cancel: () => receiver.release() }
}

/** A generator that fails with `err` when first asked for an entry. */
async function* refused(err: Error): AsyncGenerator<never, void, void> {
  throw err
}
