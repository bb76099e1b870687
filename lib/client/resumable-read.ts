/**
 * A read over the socket that outlives its connection: when the connection
 * dies under it, it is sent again on the next one for the bytes not yet
 * delivered, from the same version of the file. Its consumers: a Readable
 * (readStream), one Buffer (readBuffer), a callback per piece (readChunks).
 */
import createDebug from '../debug.js'
import { constants as bufferConstants } from 'node:buffer'
import { error } from '../errors.js'
import type { Connections } from './connections.js'
import type { Slot } from './link.js'
import { type ReadInfo, ReadReceiver, type ReadSink } from './read-receiver.js'
import { ReadStream } from './read-stream.js'
import type { ReadHandle, ReadOptions } from './types.js'

const debug = createDebug('cacheserv:client')

/** Largest Buffer this Node can allocate (readFile's limit). */
const MAX_LENGTH = bufferConstants.MAX_LENGTH

const EMPTY = Buffer.alloc(0)

/**
 * Run a read into `sink`. When its connection dies (Connections.retryable), it is sent
 * again after the next retry delay: the whole read if START had not
 * arrived, else the rest of it (from the byte the sink reached), which must
 * come from the version START announced (the same size and mtimeMs), or
 * the read fails with ECHANGED. No byte reaches the sink twice. An attempt
 * that delivered bytes starts the count of retry delays again.
 */
export function resumableRead(conns: Connections, path: string, opts: ReadOptions, sink: ReadSink): ReadHandle {
  const delays = conns.retryDelays
  let info: ReadInfo | null = null
  let delivered = 0
  let attempt = 0
  let nacks = 0
  let receiver: ReadReceiver | null = null
  let released = false
  let timer: NodeJS.Timeout | null = null
  const start = () => {
    timer = null
    if (released) return
    if (conns.closed) return sink.fail(conns.closed)
    if (receiver) nacks += receiver.nacks
    const first = info
    const from = delivered
    const id = conns.nextId()
    const slot: Slot = { link: null, released: false }
    const args = first ? { path, offset: first.offset + delivered, length: first.length - delivered } : { path, offset: opts.offset, length: opts.length }
    receiver = new ReadReceiver(id, conns.control(id, slot), {
      info: (i) => {
        if (!first) {
          info = i
          return sink.info(i)
        }
        if (i.size !== first.size || i.mtimeMs !== first.mtimeMs || i.length !== first.length - delivered) {
          throw error('ECHANGED', `${path} changed on the server while the read was resumed on a new connection (${first.size} bytes, mtime ${first.mtimeMs} before; ${i.size} bytes, mtime ${i.mtimeMs} now)`)
        }
      },
      data: (views, resume) => {
        for (const v of views) delivered += v.length
        return sink.data(views, resume)
      },
      end: () => sink.end(),
      fail: (err) => {
        if (released) return
        // An attempt that brought bytes was a success as far as it went: the count starts again.
        if (delivered > from) attempt = 0
        if (attempt < delays.length && conns.retryable(err, slot)) {
          debug('read %s failed (%s): again in %d ms from byte %d', path, err.message, delays[attempt], delivered)
          timer = setTimeout(start, delays[attempt++])
          return
        }
        sink.fail(err)
      },
    })
    conns.begin(id, slot, receiver, 'read', args)
  }
  start()
  return {
    get info() {
      return info
    },
    get nacks() {
      return nacks + (receiver?.nacks ?? 0)
    },
    release: () => {
      released = true
      if (timer) clearTimeout(timer)
      timer = null
      receiver?.release()
    },
  }
}

/** A read as a Readable of exactly its bytes; once the connections are closed, one that fails with why. */
export function readStream(conns: Connections, path: string, opts: ReadOptions): ReadStream {
  const closed = conns.closed
  if (closed) {
    const stream = new ReadStream(() => ({ info: null, nacks: 0, release() {} }), opts.highWaterMark)
    process.nextTick(() => stream.destroy(closed))
    return stream
  }
  return new ReadStream((sink) => resumableRead(conns, path, opts, sink), opts.highWaterMark)
}

/** A read into one Buffer: allocated once START says the length, filled page by page. */
export function readBuffer(conns: Connections, path: string, opts: ReadOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = EMPTY
    let at = 0
    resumableRead(conns, path, opts, {
      info: (info) => {
        if (info.length > MAX_LENGTH) throw error('ETOOBIG', `${path}: ${info.length} bytes is more than one Buffer holds (${MAX_LENGTH}); use read() or readChunks()`)
        buf = Buffer.allocUnsafe(info.length)
      },
      data: (views) => {
        for (const v of views) at += v.copy(buf, at)
        return true
      },
      end: () => resolve(buf),
      fail: reject,
    })
  })
}

/** A read whose verified pieces go to `onChunk` uncopied, valid until it returns; resolves with what START announced. */
export function readChunks(conns: Connections, path: string, onChunk: (chunk: Buffer) => void, opts: Omit<ReadOptions, 'highWaterMark'>): Promise<ReadInfo> {
  return new Promise((resolve, reject) => {
    let info: ReadInfo | null = null
    resumableRead(conns, path, opts, {
      info: (i) => void (info = i),
      data: (views) => {
        for (const v of views) onChunk(v)
        return true
      },
      end: () => resolve(info!),
      fail: reject,
    })
  })
}
