/**
 * What flows between the source and the pager: tagged parts of responses, not
 * yet cut into pages or numbered. The pager turns them into frames.
 */
import type { Releasable } from '../cache/block-lease.js'

export type Part =
  /** `identity` names the file version, so a resend can insist on the same one; it is not sent. */
  | { kind: 'start'; body: unknown; identity?: string }
  /**
   * `pageSize` is this request's current page size (it shrinks after NACKs).
   * `lease` holds the chunk's block until its bytes are written or dropped: whoever drops them releases it.
   * `flush`: the page ends with this chunk, short or not (no copy joins it to the next part's bytes).
   * `meta`: the bytes are the response's own (a readv entry's header or error), not a file's: not counted as served.
   */
  | { kind: 'data'; chunk: Buffer; pageSize?: number; lease?: Releasable; flush?: boolean; meta?: boolean }
  | { kind: 'end'; body: unknown }
  | { kind: 'result'; body: unknown }
  /** How far a long command has got; not the end. */
  | { kind: 'progress'; body: unknown }
  /** Starts a resend: the pager restarts numbering at `body.seq` and drops any partial page. */
  | { kind: 'resync'; body: ResyncBody }

export interface ResyncBody {
  resync: number
  seq: number
  offset: number
  pageSize: number
}

/**
 * `attempt` numbers the job that produced a part: 0 for the first, the NACK's
 * resync number for a resend (its low 8 bits go out as the frame's epoch,
 * header byte 17). Parts of an attempt that a NACK has replaced
 * are stale and may be dropped anywhere on the way out.
 */
export type Item =
  | ({ id: number; attempt?: number } & Part)
  | { id: number; kind: 'error'; body: { code: string; message: string }; attempt?: number }
  | { id: 0; kind: 'hello'; body: unknown }

/** The attempt of each request that is current, shared by the stages of one connection. */
export type Attempts = Map<number, number>

/** Parts that end a request. */
export function isTerminal(kind: Item['kind']): boolean {
  return kind === 'end' || kind === 'result' || kind === 'error'
}
