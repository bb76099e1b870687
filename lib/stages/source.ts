/**
 * Stage 2: requests → response parts. Runs each request's command and
 * interleaves the parts of all requests in flight, round-robin, so a large
 * read does not block a small stat behind it.
 *
 * A Duplex rather than a through2 Transform: its output is pulled by `_read`
 * (backpressure from the socket decides when the next block is read), not
 * produced by its input. Commands are async generators, so "pull the next
 * block" is `gen.next()` and "stop and clean up" is `gen.return()`.
 */
import createDebug from 'debug'
import { Duplex } from 'node:stream'
import type { CommandContext } from '../commands/context.js'
import { commands } from '../commands/index.js'
import { error, toCacheservError, type CacheservError } from '../errors.js'
import type { ParsedRequest } from '../protocol/request.js'
import type { Item, Part } from './items.js'

const debug = createDebug('cacheserv:source')

export interface SourceOptions {
  /** Requests a connection may have running at once; more wait (backpressure on the socket). */
  maxInFlight?: number
  /** Body of the HELLO frame sent first on every connection. */
  hello: unknown
  /** Called for every DATA chunk handed on (server statistics). */
  onData?: (bytes: number) => void
}

interface Job {
  id: number
  gen: AsyncGenerator<Part, void, void>
  cancelled: boolean
}

export class CommandSource extends Duplex {
  #ctx: CommandContext
  #maxInFlight: number
  #onData?: (bytes: number) => void
  /** Replies that need no command: HELLO, errors for bad requests. Sent first. */
  #replies: Item[] = []
  /** Jobs ready for their next part, in round-robin order. */
  #ready: Job[] = []
  #jobs = new Map<number, Job>()
  #heldWrite: (() => void) | null = null
  #finalCb: ((err?: Error | null) => void) | null = null
  #wantMore = false
  #pumping = false
  #closing = false

  constructor(ctx: CommandContext, { maxInFlight = 64, hello, onData }: SourceOptions) {
    super({ objectMode: true, readableHighWaterMark: 2, writableHighWaterMark: 16 })
    this.#ctx = ctx
    this.#maxInFlight = maxInFlight
    this.#onData = onData
    this.#replies.push({ id: 0, kind: 'hello', body: hello })
  }

  /** Requests running now. */
  get inFlight(): number {
    return this.#jobs.size
  }

  override _write(req: ParsedRequest, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#closing) return cb()
    if ('error' in req) {
      this.#reply(req.id, req.error)
      if (req.fatal) this.#close()
    } else if (req.op === 'cancel') {
      this.#cancel(req.id)
    } else if (this.#jobs.has(req.id)) {
      this.#reply(req.id, error('EBADREQ', `request id ${req.id} is already in flight; ids must be unique among open requests`))
    } else {
      const command = commands.get(req.op)
      if (!command) this.#reply(req.id, error('EBADREQ', `unknown command ${JSON.stringify(req.op)}; known: ${[...commands.keys()].join(', ')}`))
      else this.#start(req.id, command(req.args, this.#ctx))
    }
    if (this.#jobs.size >= this.#maxInFlight) this.#heldWrite = () => cb()
    else cb()
    this.#pump()
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb
    this.#pump()
  }

  override _read(): void {
    this.#wantMore = true
    this.#pump()
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    for (const job of this.#jobs.values()) this.#drop(job)
    this.#ready = []
    this.#releaseWrite()
    cb(err)
  }

  #start(id: number, gen: AsyncGenerator<Part, void, void>): void {
    const job: Job = { id, gen, cancelled: false }
    debug('start %d', id)
    this.#jobs.set(id, job)
    this.#ready.push(job)
  }

  #reply(id: number, err: CacheservError): void {
    debug('reply %d %s', id, err.code)
    this.#replies.push({ id, kind: 'error', body: { code: err.code, message: err.message } })
  }

  /** Stop a job; its generator's cleanup runs and an ECANCELED error ends it on the wire. */
  #cancel(id: number): void {
    const job = this.#jobs.get(id)
    if (!job) return // already finished: nothing to do
    debug('cancel %d', id)
    job.cancelled = true
    const i = this.#ready.indexOf(job)
    // A job being pulled right now is finished by #pump when its part arrives.
    if (i !== -1) {
      this.#ready.splice(i, 1)
      this.#finish(job, error('ECANCELED', `request ${id} cancelled by the client`))
    }
  }

  /** A fatal input error: send what is queued, drop every job, then end. */
  #close(): void {
    this.#closing = true
    for (const job of this.#jobs.values()) this.#drop(job)
    this.#ready = []
  }

  #drop(job: Job): void {
    this.#jobs.delete(job.id)
    job.gen.return().catch(() => {}) // runs its finally: closes fds
  }

  #finish(job: Job, err?: CacheservError): void {
    this.#drop(job)
    if (err) this.#reply(job.id, err)
    if (this.#jobs.size < this.#maxInFlight) this.#releaseWrite()
  }

  #releaseWrite(): void {
    const held = this.#heldWrite
    this.#heldWrite = null
    held?.()
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#wantMore && !this.destroyed) {
        const reply = this.#replies.shift()
        if (reply) {
          this.#wantMore = this.push(reply)
          continue
        }
        const job = this.#ready.shift()
        if (!job) break
        let item: Item | null = null
        try {
          const r = await job.gen.next()
          if (this.destroyed) return
          if (this.#jobs.get(job.id) !== job) continue // dropped while we waited
          if (job.cancelled) {
            this.#finish(job, error('ECANCELED', `request ${job.id} cancelled by the client`))
            continue
          }
          if (r.done) {
            this.#finish(job, error('EINTERNAL', `request ${job.id} ended without a response`))
            continue
          }
          item = { id: job.id, ...r.value } as Item
          if (item.kind === 'data') this.#onData?.(item.chunk.length)
          if (item.kind === 'end' || item.kind === 'result') this.#finish(job)
          else this.#ready.push(job)
        } catch (err) {
          if (this.destroyed || this.#jobs.get(job.id) !== job) continue
          const e = toCacheservError(err)
          if (e.code === 'EINTERNAL') console.error('cacheserv: request %d failed on a bug:', job.id, err)
          this.#finish(job, job.cancelled ? error('ECANCELED', `request ${job.id} cancelled by the client`) : e)
          continue
        }
        this.#wantMore = this.push(item)
      }
    } finally {
      this.#pumping = false
    }
    this.#maybeEnd()
  }

  /** End the output once input has ended (or failed) and every response is out. */
  #maybeEnd(): void {
    if (this.destroyed || this.#replies.length > 0) return
    if (this.#closing || (this.#finalCb && this.#jobs.size === 0)) {
      if (this.readableEnded) return
      debug('end of responses')
      this.push(null)
      const cb = this.#finalCb
      this.#finalCb = null
      cb?.()
    }
  }
}
