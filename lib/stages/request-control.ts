/**
 * The control commands of a connection — `auth`, `cancel`, `nack` — carried
 * out on its scheduler (CommandSource). They come from the command table like
 * the others, but act at once on the other requests and have no response of
 * their own.
 */
import createDebug from '../debug.js'
import type { ConnectionControl, NackPoint } from '../commands/context.js'
import { type CacheservError, error } from '../errors.js'
import { tokenMatches } from '../protocol/auth.js'
import type { Job } from './job.js'
import type { Jobs } from './jobs.js'
import type { ParkedRequests } from './parked.js'
import type { RequestRecord } from './resend-records.js'
import type { ResendPoint, Resends } from './resends.js'

const debug = createDebug('cacheserv:source')

/** What the control commands act on: the scheduler's queues, and what it does for them. */
export interface Scheduler {
  readonly jobs: Jobs
  readonly parked: ParkedRequests
  readonly resends: Resends
  /** An ERROR that needs no command; `attempt` marks it as the answer to that NACK (its epoch on the wire). */
  reply(id: number, err: CacheservError, attempt?: number): void
  /** A RESULT that needs no command. */
  answer(id: number, body: unknown): void
  /** A job may start now within maxInFlight. */
  hasSlot(): boolean
  /** Start a resend of `record` from `at`. */
  resend(id: number, record: RequestRecord, at: ResendPoint): void
  /** Stop `job` and end its request on the wire with `err`. */
  finish(job: Job, err: CacheservError): void
  /** A request left the queue or a job stopped: start what waits, take more input. */
  release(): void
  /** Answer what is queued, stop every job, then end the connection. */
  close(): void
}

export class RequestControl implements ConnectionControl {
  #scheduler: Scheduler
  #token: string | undefined
  #authed: boolean

  /** `token`: the first request must be `auth` with it, or the connection is closed (EAUTH). */
  constructor(scheduler: Scheduler, token: string | undefined) {
    this.#scheduler = scheduler
    this.#token = token
    this.#authed = token === undefined
  }

  get authenticated(): boolean {
    return this.#authed
  }

  /** `auth` — as the first request to a server with a token, the right one opens the connection. */
  authenticate(id: number, token: unknown): void {
    if (this.#authed) {
      const why = this.#token === undefined ? 'this server needs no token' : 'this connection is authenticated already'
      return this.refuse(id, error('EBADREQ', `auth is only the first request, on a server that asks for it: ${why}`))
    }
    if (!tokenMatches(this.#token!, token)) return this.refuseConnection(token === undefined ? 'auth without a token' : 'the server refused the token')
    this.#authed = true
    this.#scheduler.answer(id, { auth: 'ok' })
  }

  /** Anything but the right token as the first request: EAUTH, and the connection ends. */
  refuseConnection(why: string): void {
    debug('authentication failed: %s', why)
    this.#scheduler.reply(0, error('EAUTH', why))
    this.#scheduler.close()
  }

  /** Request `id` is running or waiting to run. */
  isOpen(id: number): boolean {
    return this.#scheduler.jobs.has(id) || this.#scheduler.parked.has(id)
  }

  /**
   * Refuse a line that names request `id`. When `id` is open, the error goes
   * out on id 0: on the request's own id it would end that request for the
   * receiver and restart its frame numbering, though the request runs on.
   */
  refuse(id: number, err: CacheservError): void {
    if (id !== 0 && this.isOpen(id)) this.#scheduler.reply(0, error(err.code, `request ${id}: ${err.message}`))
    else this.#scheduler.reply(id, err)
  }

  /**
   * `nack` — the receiver verified request `id`'s frames before `seq`
   * (`offset` DATA bytes) and discards the rest until RESYNC `resync`.
   */
  nack(id: number, { seq, offset, resync }: NackPoint): void {
    const s = this.#scheduler
    // The sender's rule 1 here; Resends answers for rules 2–5.
    // Not started: it starts in its turn as this resend.
    if (s.parked.resyncWaiting(id, resync)) return
    // A resend still waiting for a slot: this NACK replaces it.
    s.parked.take(id)
    const running = s.jobs.get(id)
    // An upload is never resent (its bytes came from the client) nor stopped by a NACK: it may be
    // putting its file in place, and its answer must say so.
    if (running?.inbox) return this.refuse(id, error('EBADREQ', 'an upload is not resent; a NACK does not apply to it'))
    if (running) s.jobs.drop(running)
    // From here on, whatever this request had queued is stale.
    const verdict = s.resends.nack(id, offset, resync)
    if ('refusal' in verdict) {
      s.reply(id, verdict.refusal, resync)
      return s.release()
    }
    const resume = { seq, offset, resync }
    // A resend is a request like any other: it runs within maxInFlight. One that replaces its
    // running job takes that job's slot; one of a finished request waits for a slot.
    if (!running && !s.hasSlot()) s.parked.push({ id, spec: verdict.record.spec, resume })
    else s.resend(id, verdict.record, resume)
  }

  /**
   * `cancel` — stop a job; its generator's cleanup runs and an ECANCELED
   * error ends it on the wire. A cancelled request is forgotten: a NACK for
   * it later is answered ECORRUPT, not resent. An upload is asked to stop
   * instead, and answers for itself: ECANCELED, or its RESULT when the file
   * was already being put in place (that cannot be undone, and the answer
   * must say so).
   */
  cancel(id: number): void {
    const s = this.#scheduler
    const cancelled = error('ECANCELED', `request ${id} cancelled by the client`)
    const p = s.parked.take(id)
    if (p) {
      s.resends.forget(id)
      s.reply(id, cancelled, p.resync ?? p.resume?.resync)
      return s.release()
    }
    const job = s.jobs.get(id)
    if (!job) return // already finished: nothing to do
    debug('cancel %d', id)
    s.resends.forget(id)
    if (job.inbox) return job.cancel(cancelled)
    s.finish(job, cancelled)
  }
}
