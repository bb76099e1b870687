/**
 * Short-circuit reads (PROTOCOL.md, "Short-circuit reads"): on the server's
 * host, `locate` says where a file's cached blocks are in the server's
 * shared-memory store, and they are read from the slab files here (or
 * spliced from there into a pipe), not sent over the socket. Whatever the
 * server cannot place there comes over the socket through the client.
 *
 * Each `locate` releases the grants whose blocks were all read (several may
 * be in flight); the server holds a grant's blocks until then, or its ttl.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { error, isErrorCode } from '../errors.js'
import { MAX_LOCATE_PATHS } from '../protocol/constants.js'
import { batchBytes } from './read-batches.js'
import type { ReadInfo } from './read-receiver.js'
import { type LocateAnswer, SlabFiles, TTL_MARGIN_MS } from './short-circuit.js'
import type { PipeTarget, ReadOptions } from './types.js'

/** Bytes readChunks locates at a time. */
const LOCATE_RANGE = 16 * 1024 * 1024
/** Reads longer than this are spliced into ReadOptions.pipe; a shorter one is copied whole (the pipe is not touched). */
const SPLICE_MIN = 1024 * 1024

/** What located reads need of the client: requests, and reads over the socket for what is not in shared memory. */
export interface LocatedIO {
  request<T>(op: string, args: Record<string, unknown>): Promise<T>
  readFile(path: string): Promise<Buffer>
  readChunksRemote(path: string, onChunk: (chunk: Buffer) => void, opts: Omit<ReadOptions, 'highWaterMark'>): Promise<ReadInfo>
  /** The longest request line the server takes (HELLO maxRequest), if it says. */
  maxRequest(): number | undefined
}

export class LocatedReads {
  #io: LocatedIO
  #slabs = new SlabFiles()
  /** Grants of `locate` whose blocks were read, released by the next one. */
  #grants: number[] = []

  constructor(io: LocatedIO) {
    this.#io = io
  }

  /** readChunks from shared memory, a range at a time, while the server has the file there; the rest over the socket. */
  async readChunks(path: string, onChunk: (chunk: Buffer) => void, opts: Omit<ReadOptions, 'highWaterMark'>): Promise<ReadInfo> {
    const start = opts.offset ?? 0
    const stop = opts.length === undefined ? Infinity : start + opts.length
    let info: ReadInfo | null = null
    // One buffer for every block: valid until onChunk returns, as readChunks promises.
    let scratch = Buffer.alloc(0)
    /** Bytes from here to the end are copied, never spliced (see ReadOptions.pipe). */
    let spliceUntil = 0
    let tail = 0
    let pipe: PipeTarget | null = null
    let at = start
    /** When the newest grant must have been read by (performance.now()). */
    let deadline = 0
    const copy = (length: number, fd: number, offset: number): void => {
      if (scratch.length < length) scratch = Buffer.allocUnsafe(length)
      const piece = scratch.subarray(0, length)
      SlabFiles.readInto(fd, offset, piece, path)
      onChunk(piece)
    }
    const move = (length: number, fd: number, offset: number): void => {
      const spliced = pipe ? splice(pipe, fd, offset, Math.max(0, Math.min(length, spliceUntil - at)), path) : 0
      if (spliced < length) copy(length - spliced, fd, offset + spliced)
      at += length
    }
    const done = async (): Promise<ReadInfo> => {
      if (pipe && spliceUntil > start) await pipeDrained(pipe, tail, deadline, path)
      return info!
    }
    for (;;) {
      const release = this.#grants.splice(0)
      const grantedAt = performance.now()
      const answer = await this.#io.request<LocateAnswer>('locate', { paths: [{ path, offset: at, length: Math.min(LOCATE_RANGE, stop - at) }], release })
      if (answer.lease !== null) this.#grants.push(answer.lease)
      deadline = grantedAt + answer.ttl - TTL_MARGIN_MS
      const file = answer.files[0]
      if ('code' in file) throw error(isErrorCode(file.code) ? file.code : 'EIO', file.message)
      if (!info) {
        info = { size: file.size, offset: start, length: Math.min(file.size, stop) - start, mtimeMs: file.mtimeMs }
        // A read that fits in a pipe-full would be copied whole anyway: the pipe is left as it is.
        if (opts.pipe && info.length > SPLICE_MIN && file.blocks) {
          pipe = await opts.pipe()
          // A pipe that cannot be widened takes the socket's bytes faster: there, the server's copy runs beside ours.
          if (!pipe) return this.#io.readChunksRemote(path, onChunk, { offset: start, length: opts.length })
        }
        tail = pipe?.size() ?? 0
        spliceUntil = pipe ? info.offset + info.length - tail : 0
      } else if (file.size !== info.size || file.mtimeMs !== info.mtimeMs) throw error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
      const end = info.offset + info.length
      const asked = Math.min(LOCATE_RANGE, end - at)
      const from = at
      if (file.blocks) this.#slabs.stream(answer, { ...file, blocks: file.blocks }, grantedAt, move)
      if (at >= end) return done()
      if (at - from < asked) {
        // Not in shared memory (or the grant ran out): the rest over the socket, of the same version.
        const rest = await this.#io.readChunksRemote(path, onChunk, { offset: at, length: end - at })
        if (rest.size !== info.size || rest.mtimeMs !== info.mtimeMs) throw error('ECHANGED', `${path} changed on disk while it was being read; read it again`)
        return done()
      }
    }
  }

  /**
   * One `locate` for `paths` (releasing the previous grant), then each file
   * read from shared memory, or over the socket when the server could not
   * place it there or the grant ran out first: per path, a function giving
   * its bytes or throwing its error.
   */
  async batch(paths: string[]): Promise<(() => Promise<Buffer>)[]> {
    // Grants whose blocks were all read: released by this request (several may be in flight).
    const release = this.#grants.splice(0)
    const grantedAt = performance.now()
    const answer = await this.#io.request<LocateAnswer>('locate', { paths, release })
    const got = answer.files.map((file) => {
      if ('code' in file) {
        const err = error(isErrorCode(file.code) ? file.code : 'EIO', file.message)
        return () => Promise.reject(err)
      }
      const data = file.blocks && this.#slabs.read(answer, { ...file, blocks: file.blocks }, grantedAt)
      if (data) return () => Promise.resolve(data)
      const remote = this.#io.readFile(file.path)
      remote.catch(() => {}) // surfaced when asked for
      return () => remote
    })
    if (answer.lease !== null) this.#grants.push(answer.lease)
    return got
  }

  /**
   * Files read from shared memory, yielded in the order given: a `locate`
   * per `inFlight` paths (fewer when their request line would be longer than
   * the server takes), the next batch's on its way while this one's are
   * taken. A path no request line can carry fails at its place (ETOOBIG).
   */
  async *many(paths: Iterable<string>, inFlight: number): AsyncGenerator<{ path: string; data: Buffer }, void, void> {
    const batch = Math.min(inFlight, MAX_LOCATE_PATHS)
    const queue: { path: string; data: Promise<Buffer> }[] = []
    const iterator = paths[Symbol.iterator]()
    /** A path taken from `paths` that did not fit the batch being filled: it opens the next. */
    let carried: string | null = null
    const refill = () => {
      while (queue.length + batch <= 2 * batch) {
        const next: string[] = []
        const limit = batchBytes(this.#io.maxRequest())
        let bytes = 0
        for (;;) {
          let path: string
          if (carried !== null) {
            path = carried
            carried = null
          } else {
            const r = iterator.next()
            if (r.done) break
            path = r.value
          }
          const size = Buffer.byteLength(JSON.stringify(path)) + 1
          if (next.length > 0 && bytes + size > limit) {
            carried = path
            break
          }
          if (size > limit) {
            const err = error('ETOOBIG', `${path.slice(0, 64)}…: ${size} bytes as JSON, more than a locate request line takes (${limit})`)
            const data = Promise.reject(err)
            data.catch(() => {}) // surfaced when its turn comes
            queue.push({ path, data })
            continue
          }
          bytes += size
          if (next.push(path) === batch) break
        }
        if (next.length === 0) return
        const answers = this.batch(next)
        next.forEach((path, i) => {
          const data = answers.then((got) => got[i]())
          data.catch(() => {}) // surfaced when its turn comes
          queue.push({ path, data })
        })
      }
    }
    refill()
    while (queue.length > 0) {
      const head = queue.shift()!
      const data = await head.data
      refill()
      yield { path: head.path, data }
    }
  }

  /** Close the slab files. */
  close(): void {
    this.#slabs.close()
  }
}

/** Splice `length` bytes of a slab at `offset` into the pipe; returns them. */
function splice(pipe: PipeTarget, fd: number, offset: number, length: number, path: string): number {
  for (let moved = 0; moved < length; ) {
    const n = pipe.splice(fd, offset + moved, length - moved)
    if (n === 0) throw error('EIO', `${path}: the shared-memory store ended early`)
    moved += n
  }
  return length
}

/**
 * The last pipe-full was copied, so the pipe refers to no page of the
 * server's any more, unless it was made bigger meanwhile: then wait (within
 * the grant) until it has been read.
 */
async function pipeDrained(pipe: PipeTarget, copied: number, deadline: number, path: string): Promise<void> {
  if (pipe.size() <= copied) return
  while (pipe.unread() > 0) {
    if (performance.now() > deadline) throw error('EIO', `${path}: the pipe grew while it was written and was not read in time; the bytes in it cannot be vouched for`)
    await sleep(1)
  }
}
