/**
 * Stage 3: response parts → frames. Cuts each request's bytes into pages of
 * the page size (zero-copy when a page lies inside one block) and numbers
 * every frame of a request with consecutive sequence numbers from 0.
 *
 * A data part may carry its request's current page size (smaller after
 * NACKs), and the lease on its memory: it rides on the last frame (or the
 * partial page) that holds the part's bytes, and the connection releases it
 * once that frame is written. A page joined from pieces of several parts is
 * a copy, charged as such; a part marked `flush` ends its page instead (a
 * short frame, no copy). A resync part starts a resend: any partial page
 * of the old attempt is dropped and numbering restarts at the seq the
 * receiver asked for.
 */
import createDebug from '../debug.js'
import { objectTransform } from 'through2'
import type { Transform } from 'readable-stream'
import { DEFAULT_PAGE_SIZE, FrameType, MAX_ID, MAX_PAYLOAD } from '../protocol/constants.js'
import { type Frame, jsonFrame } from '../protocol/frame.js'
import type { Releasable } from '../cache/block-lease.js'
import { type Attempts, type Item, isTerminal } from './items.js'

/** A frame on its way out; `lease` holds the block its payload views until the frame is written. */
export type OutFrame = Frame & { lease?: Releasable }

const debug = createDebug('cacheserv:pager')

export interface PagerOptions {
  /** Page size of data parts that do not carry their own. */
  pageSize?: number
  /** Current attempt per request (see CommandSource): parts of a replaced attempt are dropped here, unsent. */
  attempts?: Attempts
  /** A request ran out of seq numbers and has had its ERROR: its job (this attempt) should stop. */
  onOverflow?: (id: number, attempt: number) => void
  /** Charge the memory of a copied partial page until it is written (see MemoryBudget). */
  charge?: (bytes: number) => Releasable
}

/** Marks a request's attempt as over in `attempts` (no real attempt has it): its remaining parts are stale. */
const OVERFLOWED = -1

interface RequestState {
  seq: number
  /** Low 8 bits of the resync number of the current attempt. */
  epoch: number
  carry: Carry
}

/**
 * Bytes shorter than a page, waiting for the next part or the end: views of
 * the parts they came from, with those parts' leases. (Parts cut on whole
 * pages, as reads make them, leave a carry only at their very end.)
 */
interface Carry {
  pieces: Buffer[]
  bytes: number
  leases: Releasable[]
}

const noCarry = (): Carry => ({ pieces: [], bytes: 0, leases: [] })

/** Drop a carry that will not be sent (a resend replaced it, or its request failed). */
function dropCarry(st: RequestState | undefined): void {
  if (!st) return
  for (const lease of st.carry.leases) lease.release()
  st.carry = noCarry()
}

const JSON_TYPES = {
  hello: FrameType.HELLO,
  start: FrameType.START,
  end: FrameType.END,
  result: FrameType.RESULT,
  error: FrameType.ERROR,
  progress: FrameType.PROGRESS,
} as const

export function createPager({ pageSize: defaultPageSize = DEFAULT_PAGE_SIZE, attempts = new Map(), onOverflow, charge }: PagerOptions = {}): Transform {
  const requests = new Map<number, RequestState>()

  const stateOf = (id: number): RequestState => {
    let st = requests.get(id)
    if (!st) requests.set(id, (st = { seq: 0, epoch: 0, carry: noCarry() }))
    return st
  }
  const forget = (id: number) => {
    dropCarry(requests.get(id))
    requests.delete(id)
  }
  /**
   * The carry as one payload, with one lease for its memory: a single piece
   * keeps its own; pieces joined are a copy, charged, and theirs are released.
   */
  const takeCarry = (st: RequestState): { payload: Buffer; lease: Releasable | undefined } => {
    const { pieces, leases } = st.carry
    st.carry = noCarry()
    if (pieces.length === 1 && leases.length <= 1) return { payload: pieces[0], lease: leases[0] }
    const payload = Buffer.concat(pieces)
    for (const lease of leases) lease.release()
    return { payload, lease: charge?.(payload.length) }
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
      if (item.kind === 'data') item.lease?.release()
      return cb()
    }
    if (item.kind === 'resync') {
      const epoch = item.body.resync & 0xff
      dropCarry(requests.get(item.id))
      requests.set(item.id, { seq: item.body.seq, epoch, carry: noCarry() })
      debug('resync %d at seq %d, pages of %d', item.id, item.body.seq, item.body.pageSize)
      this.push(jsonFrame(FrameType.RESYNC, item.id, item.body.seq, item.body, epoch))
      return cb()
    }
    const st = stateOf(item.id)
    // Frames of a data part are collected (see below), the rest pushed as made.
    let collect: OutFrame[] | null = null
    const emit = (f: OutFrame) => (collect ? collect.push(f) : this.push(f))
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
      emit(jsonFrame(FrameType.ERROR, item.id, st.seq, { code: attempt === 0 ? 'ETOOBIG' : 'ECORRUPT', message }, st.epoch))
      forget(item.id)
      attempts.set(item.id, OVERFLOWED)
      debug('request %d ran out of seq numbers', item.id)
      onOverflow?.(item.id, attempt)
      return true
    }
    const page = (payload: Buffer): OutFrame | null => {
      if (overflows()) return null
      const frame: OutFrame = { type: FrameType.DATA, id: item.id, seq: st.seq++, epoch: st.epoch, payload }
      return frame
    }

    const finish = (frames: OutFrame[]) => {
      for (const f of frames) this.push(f)
      cb()
    }

    if (item.kind === 'data') {
      const pageSize = item.pageSize ?? defaultPageSize
      // Collected, then pushed: a frame's lease is set before anything downstream can see it.
      const frames: OutFrame[] = (collect = [])
      const frame = (payload: Buffer, lease: Releasable | undefined) => {
        const f = page(payload)
        if (!f) return lease?.release()
        f.lease = lease
        frames.push(f)
      }
      /** Whole pages of `buf` as views, the rest into the carry; `lease` goes with the last holder of `buf`. */
      const cut = (buf: Buffer, lease: Releasable | undefined) => {
        const whole = buf.length - (buf.length % pageSize)
        for (let at = 0; at < whole; at += pageSize) frame(buf.subarray(at, at + pageSize), at + pageSize === buf.length ? lease : undefined)
        if (whole === buf.length) return
        st.carry.pieces.push(buf.subarray(whole))
        st.carry.bytes += buf.length - whole
        if (lease) st.carry.leases.push(lease)
      }
      let chunk = item.chunk
      let lease = item.lease
      if (st.carry.bytes >= pageSize) {
        // The page size shrank below what was carried: send the carry in pages of the new size.
        const carried = takeCarry(st)
        cut(carried.payload, carried.lease)
      }
      if (st.carry.bytes > 0) {
        const need = pageSize - st.carry.bytes
        if (chunk.length < need) {
          cut(chunk, lease)
          return finish(frames)
        }
        // The carry and the head of this chunk make a page: a copy, so the chunk's lease stays with its rest.
        st.carry.pieces.push(chunk.subarray(0, need))
        st.carry.bytes += need
        const joined = takeCarry(st)
        frame(joined.payload, joined.lease)
        chunk = chunk.subarray(need)
        if (chunk.length === 0) {
          lease?.release()
          lease = undefined
        }
      }
      if (chunk.length > 0) cut(chunk, lease)
      if (item.flush && st.carry.bytes > 0) {
        const { payload, lease: held } = takeCarry(st)
        frame(payload, held)
      }
      return finish(frames)
    }

    // The last page: no copy when it is one piece (a small file is always one).
    if (item.kind === 'end' && st.carry.bytes > 0) {
      const { payload, lease } = takeCarry(st)
      const last = page(payload)
      if (last) {
        last.lease = lease
        this.push(last)
      } else lease?.release()
    }
    if (item.kind === 'hello') throw new TypeError('HELLO belongs to id 0')
    if (overflowed || (!isTerminal(item.kind) && overflows())) return cb()
    if (isTerminal(item.kind)) {
      forget(item.id)
      debug('request %d done after %d frames (%s)', item.id, st.seq + 1, item.kind)
    }
    // An error answering a NACK carries that NACK's epoch, so the receiver, which waits for it, reads it.
    const epoch = item.kind === 'error' && item.attempt !== undefined ? item.attempt & 0xff : st.epoch
    let frame = jsonFrame(JSON_TYPES[item.kind as keyof typeof JSON_TYPES], item.id, st.seq++, item.body, epoch)
    if (frame.payload.length > MAX_PAYLOAD) {
      // More than a frame can carry (ls of a directory of ~300k entries): this request fails, not the connection.
      const message = `the ${item.kind} of request ${item.id} is ${frame.payload.length} bytes; a frame carries at most ${MAX_PAYLOAD}`
      frame = jsonFrame(FrameType.ERROR, item.id, frame.seq, { code: 'ETOOBIG', message }, epoch)
      forget(item.id)
    }
    this.push(frame)
    cb()
  })
}
