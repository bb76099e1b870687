/**
 * Stage 3: response parts → frames. Cuts each request's bytes into pages of
 * the page size (zero-copy when a page lies inside one block) and numbers
 * every frame of a request with consecutive sequence numbers from 0.
 */
import createDebug from 'debug'
import { objectTransform } from 'through2'
import type { Transform } from 'node:stream'
import { DEFAULT_PAGE_SIZE, FrameType } from '../protocol/constants.js'
import { type Frame, jsonFrame } from '../protocol/frame.js'
import { type Item, isTerminal } from './items.js'

const debug = createDebug('cacheserv:pager')

export interface PagerOptions {
  pageSize?: number
}

interface RequestState {
  seq: number
  /** Bytes shorter than a page, waiting for the next chunk or the end. */
  carry: Buffer[]
  carryBytes: number
}

const JSON_TYPES = { hello: FrameType.HELLO, start: FrameType.START, end: FrameType.END, result: FrameType.RESULT, error: FrameType.ERROR } as const

export function createPager({ pageSize = DEFAULT_PAGE_SIZE }: PagerOptions = {}): Transform {
  const requests = new Map<number, RequestState>()

  const stateOf = (id: number): RequestState => {
    let st = requests.get(id)
    if (!st) requests.set(id, (st = { seq: 0, carry: [], carryBytes: 0 }))
    return st
  }

  return objectTransform({ highWaterMark: 4 }, function (this: Transform, item: Item, _enc: BufferEncoding, cb: () => void) {
    // Connection-level frames (id 0) carry no per-request state.
    if (item.id === 0 && (item.kind === 'hello' || item.kind === 'error')) {
      this.push(jsonFrame(JSON_TYPES[item.kind], 0, 0, item.body))
      return cb()
    }
    const st = stateOf(item.id)
    const page = (payload: Buffer) => this.push({ type: FrameType.DATA, id: item.id, seq: st.seq++, payload } satisfies Frame)

    if (item.kind === 'data') {
      let chunk = item.chunk
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
      while (chunk.length >= pageSize) {
        page(chunk.subarray(0, pageSize))
        chunk = chunk.subarray(pageSize)
      }
      if (chunk.length > 0) {
        st.carry.push(chunk)
        st.carryBytes = chunk.length
      }
      return cb()
    }

    if (item.kind === 'end' && st.carryBytes > 0) page(Buffer.concat(st.carry))
    if (item.kind === 'hello') throw new TypeError('HELLO belongs to id 0')
    if (isTerminal(item.kind)) {
      requests.delete(item.id)
      debug('request %d done after %d frames (%s)', item.id, st.seq + 1, item.kind)
    }
    this.push(jsonFrame(JSON_TYPES[item.kind as keyof typeof JSON_TYPES], item.id, st.seq++, item.body))
    cb()
  }) as unknown as Transform
}
