/**
 * The sender's rules 2–5 of PROTOCOL.md's reverse path ("on `nack` for
 * request N"), for one connection: what it keeps of each request to send its response again, how
 * far each response got and at what page size, and which attempt of each
 * request is current. The source asks it what a NACK means; the pager reads
 * the current attempts (`attempts`) to drop the parts of replaced ones.
 */
import type { CommandContext, CommandIO, CommandSpec, Resume } from '../commands/context.js'
import { type CacheservError, error } from '../errors.js'
import { DEFAULT_PAGE_SIZE } from '../protocol/constants.js'
import type { Attempts, Part, ResyncBody } from './items.js'
import { PageSize } from './page-size.js'
import { type RequestRecord, ResendRecords } from './resend-records.js'

export interface ResendsOptions {
  /** The configured page size; NACKs shrink a request's pages below it. */
  pageSize?: number
  /** Smallest page size after NACKs. */
  minPageSize?: number
  /** NACKs in a row at the smallest page size, without progress, before a request fails with ECORRUPT. */
  retries?: number
  /** Called for every NACK that starts a resend (server statistics). */
  onNack?: () => void
  /** The request still has a job: its record is kept whatever the bounds. */
  running: (id: number) => boolean
}

/** Where a resend starts: the receiver's next seq, its verified DATA bytes, and the NACK's resync number. */
export interface ResendPoint {
  seq: number
  offset: number
  resync: number
}

export class Resends {
  /** The current attempt of each request that has been resent: 0 (absent) for a first attempt. */
  readonly attempts: Attempts
  #opts: ResendsOptions
  #records: ResendRecords

  constructor(opts: ResendsOptions) {
    this.#opts = opts
    this.attempts = new Map()
    this.#records = new ResendRecords(opts.running, (id) => this.attempts.delete(id))
  }

  get(id: number): RequestRecord | undefined {
    return this.#records.get(id)
  }

  /**
   * A new request under `id`: its record, at the full page size. `resync`: it was NACKed before
   * it started, so its first attempt is that resend.
   */
  begin(id: number, spec: CommandSpec, args: Record<string, unknown>, resync?: number): RequestRecord {
    // An older request under this id: its resend epoch must not mark the new one's parts stale.
    this.attempts.delete(id)
    const pages = new PageSize({ max: this.#opts.pageSize ?? DEFAULT_PAGE_SIZE, floor: this.#opts.minPageSize, retries: this.#opts.retries })
    const record: RequestRecord = { spec, args, pages, sent: 0, memo: {} }
    this.#records.remember(id, record)
    if (resync !== undefined) this.attempts.set(id, resync)
    return record
  }

  /** A request's bytes are not to be sent again (cancelled): a later NACK of it is refused. */
  forget(id: number): void {
    this.#records.forget(id)
  }

  /** `bytes` of request `id`'s DATA handed on: the page size they go out in (none for a forgotten request). */
  sent(id: number, bytes: number): number | undefined {
    const record = this.#records.get(id)
    if (!record) return undefined
    const size = record.pages.size
    record.sent += bytes
    record.pages.sent(bytes)
    return size
  }

  /** The file version request `id`'s START announced: its resends must serve that one. */
  identify(id: number, identity: string | undefined): void {
    const record = this.#records.get(id)
    if (record && identity) record.identity = identity
  }

  /**
   * A NACK of request `id` at `offset` with resync number `resync`: the record to send again
   * from there (its page size halved), or the ECORRUPT that answers the NACK instead.
   * From a resend on, the request's parts of earlier attempts are stale.
   */
  nack(id: number, offset: number, resync: number): { record: RequestRecord } | { refusal: CacheservError } {
    // Rule 3: forgotten, or given up on (PageSize.nack counts the NACKs at the floor); rule 2: halved.
    const record = this.#records.get(id)
    // Uploads are not resent (their bytes came from the client); forgotten requests cannot be.
    if (!record || record.spec.input) return { refusal: unknownRequest(id) }
    this.#opts.onNack?.()
    this.attempts.set(id, resync)
    const inFlight = Math.max(0, record.sent - offset)
    record.sent = offset
    if (!record.pages.nack(offset, inFlight)) {
      const { retries, floor } = record.pages
      return { refusal: error('ECORRUPT', `request ${id} failed its checksums ${retries} times in a row at the smallest page size (${floor} bytes); giving up`) }
    }
    return { record }
  }
}

/** The answer to a NACK of a request the connection has forgotten (or never resends). */
export function unknownRequest(id: number): CacheservError {
  return error('ECORRUPT', `cannot resend request ${id}: this connection no longer knows it`)
}

/** A resend: RESYNC first, then the command again from where the receiver stands, serving the version it announced. */
export async function* resend(record: RequestRecord, ctx: CommandContext, { seq, offset, resync }: ResendPoint, io: CommandIO): AsyncGenerator<Part, void, void> {
  const body: ResyncBody = { resync, seq, offset, pageSize: record.pages.size }
  yield { kind: 'resync', body }
  const resume: Resume = { seq, offset, identity: record.identity }
  yield* record.spec.run(record.args, ctx, { ...io, resume })
}
