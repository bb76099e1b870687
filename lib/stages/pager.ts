/**
 * Stage 3: response parts → frames. Cuts each request's bytes into pages of
 * the page size (zero-copy when a page lies inside one block) and numbers
 * every frame of a request with consecutive sequence numbers from 0.
 *
 * A data part may carry its request's current page size (smaller after
 * NACKs). A resync part starts a resend: any partial page of the old attempt
 * is dropped and numbering restarts at the seq the receiver asked for.
 */
import createDebug from '../debug.js'
import { objectTransform } from 'through2'
import type { Transform } from 'node:stream'
import { DEFAULT_PAGE_SIZE, FrameType, MAX_ID, MAX_PAYLOAD } from '../protocol/constants.js'
import { type Frame, jsonFrame } from '../protocol/frame.js'
import { type Attempts, type Item, isTerminal } from './items.js'

const debug = createDebug('cacheserv:pager')

export interface PagerOptions {
  /** Page size of data parts that do not carry their own. */
  pageSize?: number
  /** Current attempt per request (see CommandSource): parts of a replaced attempt are dropped here, unsent. */
  attempts?: Attempts
  /** A request ran out of seq numbers and has had its ERROR: its job (this attempt) should stop. */
  onOverflow?: (id: number, attempt: number) => void
}

/** Marks a request's attempt as over in `attempts` (no real attempt has it): its remaining parts are stale. */
const OVERFLOWED = -1

interface RequestState {
  seq: number
  /** Low 8 bits of the resync number of the current attempt. */
  epoch: number
  /** Bytes shorter than a page, waiting for the next chunk or the end. */
  carry: Buffer[]
  carryBytes: number
}

const JSON_TYPES = {
  hello: FrameType.HELLO,
  start: FrameType.START,
  end: FrameType.END,
  result: FrameType.RESULT,
  error: FrameType.ERROR,
  progress: FrameType.PROGRESS,
} as const

export function createPager({ pageSize: defaultPageSize = DEFAULT_PAGE_SIZE, attempts = new Map(), onOverflow }: PagerOptions = {}): Transform {
  const requests = new Map<number, RequestState>()

  const stateOf = (id: number): RequestState => {
    let st = requests.get(id)
    if (!st) requests.set(id, (st = { seq: 0, epoch: 0, carry: [], carryBytes: 0 }))
    return st
  }

  return objectTransform({ highWaterMark: 4 }, function (this: Transform, item: Item, _enc: BufferEncoding, cb: () => void) {
    // Connection-level frames (id 0) carry no per-request state.
    if (item.id === 0 && (item.kind === 'hello' || item.kind === 'error')) {
      this.push(jsonFrame(JSON_TYPES[item.kind], 0, 0, item.body))
      return cb()
    }
    // A NACK replaced this part's attempt while it waited in the pipeline: the receiver would discard it.
    if ('attempt' in item && item.attempt !== undefined && item.attempt !== (attempts?.get(item.id) ?? item.attempt)) {
      debug('dropped a stale %s of request %d (attempt %d)', item.kind, item.id, item.attempt)
      return cb()
    }
    if (item.kind === 'resync') {
      const epoch = item.body.resync & 0xff
      requests.set(item.id, { seq: item.body.seq, epoch, carry: [], carryBytes: 0 })
      debug('resync %d at seq %d, pages of %d', item.id, item.body.seq, item.body.pageSize)
      this.push(jsonFrame(FrameType.RESYNC, item.id, item.body.seq, item.body, epoch))
      return cb()
    }
    const st = stateOf(item.id)
    let overflowed = false
    /**
     * A seq is a u32 and the last one is kept for a terminal frame: a frame that would take it
     * ends the request with an ERROR instead, and the connection goes on. (A NACK may ask for a
     * resend from seq 2^32 - 1; a first attempt would need over 2^32 frames.) The rest of the
     * attempt is stale from here; a new request or a new NACK under this id starts afresh.
     */
    const overflows = (): boolean => {
      if (!overflowed && st.seq < MAX_ID) return false
      if (overflowed) return true
      overflowed = true
      const attempt = 'attempt' in item ? (item.attempt ?? 0) : 0
      const message = attempt === 0
        ? `request ${item.id} needs more than 2^32 frames`
        : `cannot resend request ${item.id} from frame ${st.seq}: its frames would be numbered past 2^32 - 1`
      this.push(jsonFrame(FrameType.ERROR, item.id, st.seq, { code: attempt === 0 ? 'ETOOBIG' : 'ECORRUPT', message }, st.epoch))
      requests.delete(item.id)
      attempts.set(item.id, OVERFLOWED)
      debug('request %d ran out of seq numbers', item.id)
      onOverflow?.(item.id, attempt)
      return true
    }
    const page = (payload: Buffer) => {
      if (overflows()) return
      this.push({ type: FrameType.DATA, id: item.id, seq: st.seq++, epoch: st.epoch, payload } satisfies Frame)
    }

    if (item.kind === 'data') {
      const pageSize = item.pageSize ?? defaultPageSize
      const cut = (buf: Buffer): Buffer => {
        while (buf.length >= pageSize) {
          page(buf.subarray(0, pageSize))
          buf = buf.subarray(pageSize)
        }
        return buf
      }
      let chunk = item.chunk
      if (st.carryBytes >= pageSize) {
        // The page size shrank below what was carried: send the carry in pages of the new size.
        const rest = cut(Buffer.concat(st.carry))
        st.carry = rest.length > 0 ? [rest] : []
        st.carryBytes = rest.length
      }
      if (st.carryBytes > 0) {
        const need = pageSize - st.carryBytes
        if (chunk.length < need) {
          st.carry.push(chunk)
          st.carryBytes += chunk.length
          return cb()
        }
        page(Buffer.concat([...st.carry, chunk.subarray(0, need)]))
        st.carry = []
        st.carryBytes = 0
        chunk = chunk.subarray(need)
      }
      chunk = cut(chunk)
      if (chunk.length > 0) {
        st.carry.push(chunk)
        st.carryBytes = chunk.length
      }
      return cb()
    }

    // The last page: no copy when it is one piece (a small file is always one).
    if (item.kind === 'end' && st.carryBytes > 0) page(st.carry.length === 1 ? st.carry[0] : Buffer.concat(st.carry))
    if (item.kind === 'hello') throw new TypeError('HELLO belongs to id 0')
    if (overflowed || (!isTerminal(item.kind) && overflows())) return cb()
    if (isTerminal(item.kind)) {
      requests.delete(item.id)
      debug('request %d done after %d frames (%s)', item.id, st.seq + 1, item.kind)
    }
    // An error answering a NACK carries that NACK's epoch, so the receiver, which waits for it, reads it.
    const epoch = item.kind === 'error' && item.attempt !== undefined ? item.attempt & 0xff : st.epoch
    let frame = jsonFrame(JSON_TYPES[item.kind as keyof typeof JSON_TYPES], item.id, st.seq++, item.body, epoch)
    if (frame.payload.length > MAX_PAYLOAD) {
      // More than a frame can carry (ls of a directory of ~300k entries): this request fails, not the connection.
      const message = `the ${item.kind} of request ${item.id} is ${frame.payload.length} bytes; a frame carries at most ${MAX_PAYLOAD}`
      frame = jsonFrame(FrameType.ERROR, item.id, frame.seq, { code: 'ETOOBIG', message }, epoch)
      requests.delete(item.id)
    }
    this.push(frame)
    cb()
  }) as unknown as Transform
}
