/**
 * Stage 2: requests → response parts. The connection's scheduler: it starts
 * each request's command as a job within the connection's limits (in flight,
 * parked, uploads), hands on the jobs' parts in turn (RoundRobin), holds the
 * input back while those limits are reached, and ends the output once the
 * input has ended and every response is out.
 *
 * A Duplex rather than a through2 Transform: its output is pulled by `_read`
 * (backpressure from the socket decides when the next block is read), not
 * produced by its input. Commands are async generators, so "pull the next
 * block" is `gen.next()` and "stop and clean up" is `gen.return()`.
 *
 * Control commands (auth, cancel, nack) come from the same command table and
 * act on the other requests through ConnectionControl. A NACK stops the
 * request's job, halves its page size and starts a new job from where the
 * receiver's verified bytes end, behind a RESYNC, with the request's own
 * arguments (Resends). Frames of the old job still in the pipeline go
 * out first and the receiver discards them until that RESYNC.
 */
import createDebug from '../debug.js'
import { Duplex } from 'readable-stream'
import { type CommandContext, type CommandIO, type CommandSpec, isControl } from '../commands/context.js'
import { commands } from '../commands/index.js'
import { error, toCacheservError, type CacheservError } from '../errors.js'
import { DEFAULT_MAX_IN_FLIGHT, MAX_UPLOADS_PER_CONNECTION } from '../protocol/constants.js'
import { describe, type Request } from '../protocol/request.js'
import { Inbox } from './inbox.js'
import { ParkedRequests } from './parked.js'
import type { Releasable } from '../cache/block-lease.js'
import type { Attempts, Item, Part } from './items.js'
import { Job } from './job.js'
import { Jobs } from './jobs.js'
import { RequestControl } from './request-control.js'
import type { RequestRecord } from './resend-records.js'
import { type ResendPoint, Resends, resend, unknownRequest } from './resends.js'
import type { Inbound } from './request-parser.js'
import type { LeaseGrants } from '../server/lease-grants.js'

const debug = createDebug('cacheserv:source')

export interface SourceOptions {
  /** Requests a connection may have running at once; more wait (backpressure on the socket). Default 32. */
  maxInFlight?: number
  /** Body of the HELLO frame sent first on every connection. */
  hello: unknown
  /** Called for every DATA chunk handed on (server statistics). */
  onData?: (bytes: number) => void
  /** Called for every NACK that starts a resend (server statistics). */
  onNack?: () => void
  /** The configured page size; NACKs shrink a request's pages below it. */
  pageSize?: number
  /** Smallest page size after NACKs. Default 1 KiB. */
  minPageSize?: number
  /** NACKs in a row at the smallest page size, without progress, before a request fails with ECORRUPT. Default 8. */
  retries?: number
  /** When set, the first request must be `auth` with this token, or the connection is closed (EAUTH). */
  token?: string
  /** Ms of silence after which a command marked `heartbeat` sends an empty PROGRESS. Default 1000. */
  heartbeat?: number
  /** True while the peer is not taking the output already written to it. */
  backedUp?: () => boolean
  /** Called for the lease of every DATA part handed on: the connection answers for it from here. */
  onLease?: (lease: Releasable) => void
  /** The connection's short-circuit grants (`locate`), if it may have any. */
  grants?: LeaseGrants
}

const EMPTY = Buffer.alloc(0)

/**
 * A command marked `heartbeat` that has sent nothing for this long says it is
 * still at work: well within the progress timeouts of our clients (5 s).
 */
const HEARTBEAT_MS = 1000
/** Replies waiting for the socket beyond which the connection's input is not read (see #full). */
const MAX_QUEUED_REPLIES = 64

export class CommandSource extends Duplex {
  #ctx: CommandContext
  #opts: SourceOptions
  #maxInFlight: number
  /** Replies that need no command: HELLO, errors for bad requests. Sent first. */
  #replies: Item[] = []
  #jobs = new Jobs()
  #parked = new ParkedRequests()
  #resends: Resends
  #control: RequestControl
  #heldWrite: (() => void) | null = null
  #finalCb: ((err?: Error | null) => void) | null = null
  #wantMore = false
  #pumping = false
  /** A fatal error: answer what is queued, then end. */
  #closing = false
  /** Shutting down: finish what runs, refuse new requests, then end. */
  #refusing = false

  constructor(ctx: CommandContext, opts: SourceOptions) {
    super({ objectMode: true, readableHighWaterMark: 2, writableHighWaterMark: 16 })
    this.#ctx = ctx
    this.#opts = opts
    this.#maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT
    const { pageSize, minPageSize, retries, onNack } = opts
    this.#resends = new Resends({ pageSize, minPageSize, retries, onNack, running: (id) => this.#jobs.has(id) })
    this.#control = new RequestControl(
      {
        jobs: this.#jobs,
        parked: this.#parked,
        resends: this.#resends,
        reply: (id, err, attempt) => this.#reply(id, err, attempt),
        answer: (id, body) => void this.#replies.push({ id, kind: 'result', body }),
        hasSlot: () => this.#jobs.running < this.#maxInFlight,
        resend: (id, record, at) => this.#resend(id, record, at),
        finish: (job, err) => this.#finish(job, err),
        release: () => this.#releaseIfRoom(),
        close: () => this.#close(),
      },
      opts.token,
    )
    this.#replies.push({ id: 0, kind: 'hello', body: opts.hello })
  }

  /** Answer new requests with ESHUTDOWN; those running go on (the server closes once they are done). */
  refuseNewRequests(): void {
    this.#refusing = true
    // One NACKed while it waited gets its ERROR in the NACK's epoch: the receiver waits for that.
    for (const p of this.#parked.clear()) this.#reply(p.id, shuttingDown(), p.resync ?? p.resume?.resync)
    this.#pump()
  }

  /**
   * End the connection from outside the input (a deadline passed): `err` goes out on id 0 after
   * what is already queued, every job stops, and the output ends.
   */
  fail(err: CacheservError): void {
    if (this.#closing || this.destroyed) return
    this.#reply(0, err)
    this.#close()
    this.#pump()
  }

  /** Stop attempt `attempt` of request `id` without an answer: a later stage has already ended it on the wire. */
  abandon(id: number, attempt: number): void {
    const job = this.#jobs.get(id)
    if (!job || job.attempt !== attempt) return
    this.#jobs.drop(job)
    this.#releaseIfRoom()
    this.#pump()
  }

  /** The current attempt of each resent request: the pager drops the parts of replaced ones. */
  get attempts(): Attempts {
    return this.#resends.attempts
  }

  /** Requests running now, or parked to run. */
  get inFlight(): number {
    return this.#jobs.size + this.#parked.length
  }

  /** Requests the server is working on: running or parked, not counting uploads (they wait on the client). */
  get working(): number {
    return this.#jobs.running + this.#parked.length
  }

  override _write(req: Inbound, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.#closing) return cb()
    const request = 'op' in req ? (req as Request) : null
    const entry = request ? commands.get(request.op) : undefined
    if (!this.#control.authenticated) {
      // Nothing but the right token opens the connection.
      if (request?.op === 'auth' && entry && isControl(entry)) entry.control(request.id, request.args, this.#control)
      else this.#control.refuseConnection('this server needs a token: pass --token or set CACHESERV_TOKEN')
      cb()
      return this.#pump()
    }
    if (this.#refusing && !('frame' in req) && !('error' in req) && !(entry && isControl(entry))) {
      this.#reply(req.id, shuttingDown())
      return this.#next(cb)
    }
    if ('frame' in req) {
      // An uploaded frame: hand it to its request, which releases our input when it takes it.
      const inbox = this.#jobs.get(req.id)?.inbox
      return inbox ? inbox.push(req.frame, () => cb()) : cb() // no such upload (failed, cancelled): drop
    }
    if ('error' in req) {
      this.#control.refuse(req.id, req.error)
      if (req.fatal) this.#close()
    } else if (entry && isControl(entry)) {
      entry.control(req.id, req.args, this.#control)
    } else if (this.#control.isOpen(req.id)) {
      this.#control.refuse(req.id, error('EBADREQ', `request id ${req.id} is already in flight; ids must be unique among open requests`))
    } else {
      const spec = entry
      if (!spec) this.#reply(req.id, error('EBADREQ', `unknown command ${describe(req.op)}; known: ${[...commands.keys()].join(', ')}`))
      else if (spec.input && this.#jobs.uploads >= MAX_UPLOADS_PER_CONNECTION) {
        this.#reply(req.id, error('EBUSY', `${MAX_UPLOADS_PER_CONNECTION} uploads are already running on this connection; send this write when one is done`))
      } else if (!spec.input && this.#jobs.running >= this.#maxInFlight) this.#parked.push({ id: req.id, req, spec })
      else this.#begin(req, spec)
    }
    this.#next(cb)
  }

  /** Ask for the next input now, or once there is room for it (see #full). */
  #next(cb: (err?: Error | null) => void): void {
    if (this.#full()) this.#heldWrite = () => cb()
    else cb()
    this.#pump()
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb
    // No more uploaded bytes can come.
    for (const job of this.#jobs.values()) job.inbox?.close()
    this.#pump()
  }

  override _read(): void {
    this.#wantMore = true
    this.#pump()
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.#parked.clear()
    this.#jobs.dropAll()
    this.#releaseWrite()
    cb(err)
  }

  /** Start a request; `resync`: it was NACKed while parked, so it starts as that resend (RESYNC first). */
  #begin(req: Request, spec: CommandSpec, resync?: number): void {
    const record = this.#resends.begin(req.id, spec, req.args, resync)
    if (resync !== undefined) return this.#resend(req.id, record, { seq: 0, offset: 0, resync })
    const inbox = spec.input ? new Inbox() : null
    this.#start(req.id, spec, (signal) => spec.run(req.args, this.#ctx, { ...this.#io(signal, record), input: inbox ?? undefined }), 0, inbox)
  }

  #start(id: number, spec: CommandSpec, run: (signal: AbortSignal) => AsyncGenerator<Part, void, void>, attempt = 0, inbox: Inbox | null = null): void {
    debug('start %d (attempt %d)', id, attempt)
    const heartbeat = spec.heartbeat ? (this.#opts.heartbeat ?? HEARTBEAT_MS) : 0
    const abort = new AbortController()
    const job = new Job(id, run(abort.signal), { attempt, inbox, heartbeat, bulky: !inbox && !spec.heartbeat, abort, onSettled: () => this.#pump() })
    this.#jobs.add(job)
  }

  /** An ERROR that needs no command; `attempt` marks it as the answer to that NACK (its epoch on the wire). */
  #reply(id: number, err: CacheservError, attempt?: number): void {
    debug('reply %d %s', id, err.code)
    this.#replies.push({ id, kind: 'error', body: { code: err.code, message: err.message }, attempt })
  }

  #io(signal: AbortSignal, record: RequestRecord): CommandIO {
    return { signal, backedUp: this.#opts.backedUp, pageSize: () => record.pages.size, hold: this.#opts.onLease, grants: this.#opts.grants, memo: record.memo }
  }

  /** Start a resend: RESYNC, then the request's response again from where the receiver stands. */
  #resend(id: number, record: RequestRecord, at: ResendPoint): void {
    debug('nack %d: resend from seq %d, byte %d, pages of %d', id, at.seq, at.offset, record.pages.size)
    this.#start(id, record.spec, (signal) => resend(record, this.#ctx, at, this.#io(signal, record)), at.resync)
  }

  /** A fatal input error: send what is queued, drop every job, then end. */
  #close(): void {
    this.#closing = true
    this.#parked.clear()
    this.#jobs.dropAll()
  }

  #finish(job: Job, err?: CacheservError): void {
    this.#jobs.drop(job)
    if (err) this.#reply(job.id, err, job.attempt || undefined)
    this.#releaseIfRoom()
  }

  /** Start parked requests while jobs may run, then take more input if there is room. */
  #releaseIfRoom(): void {
    while (this.#parked.length > 0 && this.#jobs.running < this.#maxInFlight) {
      const p = this.#parked.shift()!
      const record = this.#resends.get(p.id)
      if (p.req) this.#begin(p.req, p.spec, p.resync)
      else if (p.resume && record) this.#resend(p.id, record, p.resume)
      else if (p.resume) this.#reply(p.id, unknownRequest(p.id), p.resume.resync)
    }
    if (!this.#full()) this.#releaseWrite()
  }

  /**
   * Take no more input for now: MAX_PARKED requests wait for a job slot, or
   * replies that need no job (errors for bad lines, say) wait for the socket.
   * Without the second bound, a peer that sends bad lines and never reads
   * would grow that queue without end (a 2-byte line earns a ~150-byte reply).
   */
  #full(): boolean {
    return this.#parked.full || this.#replies.length >= MAX_QUEUED_REPLIES
  }

  #releaseWrite(): void {
    const held = this.#heldWrite
    this.#heldWrite = null
    held?.()
  }

  /** Hand on parts while downstream wants them: replies first, then jobs whose next part is ready. */
  #pump(): void {
    if (this.#pumping) return
    this.#pumping = true
    try {
      while (this.#wantMore && !this.destroyed) {
        const reply = this.#replies.shift()
        if (reply) {
          this.#wantMore = this.push(reply)
          this.#releaseIfRoom()
          continue
        }
        const job = this.#jobs.next()
        if (!job) break // each running job is producing; the first to settle calls #pump again
        const item = this.#settle(job)
        if (item) this.#wantMore = this.push(item)
      }
    } finally {
      this.#pumping = false
    }
    this.#maybeEnd()
  }

  /** Turn a job's outcome into the item to send (or an error reply); requeue it if it goes on. */
  #settle(job: Job): Item | null {
    const outcome = job.take()!
    if ('error' in outcome) {
      const e = toCacheservError(outcome.error)
      if (e.code === 'EINTERNAL') console.error('cacheserv: request %d failed on a bug:', job.id, outcome.error)
      this.#finish(job, e)
      return null
    }
    if ('done' in outcome) {
      this.#finish(job, error('EINTERNAL', `request ${job.id} ended without a response`))
      return null
    }
    const item = this.#tag(job, outcome.part)
    if (item.kind === 'end' || item.kind === 'result') this.#finish(job)
    else this.#jobs.requeue(job)
    return item
  }

  /** Turn a command's part into an item: data learns its page size, START's file identity is kept for resends. */
  #tag({ id, attempt }: Job, part: Part): Item {
    if (part.kind === 'data') {
      if (!part.meta) this.#opts.onData?.(part.chunk.length)
      const { chunk, lease, flush } = part
      if (lease) this.#opts.onLease?.(lease)
      // The item takes the bytes over: a suspended generator keeps the part it yielded last, and
      // must not keep its block alive once the lease is released.
      part.chunk = EMPTY
      part.lease = undefined
      const pageSize = this.#resends.sent(id, chunk.length)
      return pageSize === undefined ? { id, attempt, kind: 'data', chunk, lease, flush } : { id, attempt, kind: 'data', chunk, pageSize, lease, flush }
    }
    if (part.kind === 'start') {
      this.#resends.identify(id, part.identity)
      return { id, attempt, kind: 'start', body: part.body }
    }
    return { id, attempt, ...part }
  }

  /** End the output once input has ended (or failed) and every response is out. */
  #maybeEnd(): void {
    if (this.destroyed || this.#replies.length > 0) return
    if (this.#closing || (this.#finalCb && this.#jobs.size === 0 && this.#parked.length === 0)) {
      if (this.readableEnded) return
      debug('end of responses')
      this.push(null)
      const cb = this.#finalCb
      this.#finalCb = null
      cb?.()
    }
  }
}

function shuttingDown(): CacheservError {
  return error('ESHUTDOWN', 'the server is shutting down; connect to it again once it is back')
}
