/**
 * The receiving side of one request: what to do with each frame that
 * arrives for it. Frames are delivered only in sequence and intact; a gap or
 * a bad payload asks for a resend (NACK); after a NACK everything of this
 * request is discarded until the resend begins: at its RESYNC, or at the
 * first frame whose header carries the resend's epoch. A damaged frame of
 * the resend is NACKed at once, not left to a timeout. These are the
 * receiver's rules 1–4 and 7 of PROTOCOL.md's reverse path (rules 5 and 6,
 * the hunt and the progress timeout, are the connection's: FrameDecoder and
 * the client's link).
 */
import { FrameType } from './constants.js'
import { payloadLength, type ReceivedFrame } from './frame.js'

/** What the receiver asks the sender: resend from `seq`, after `offset` verified DATA bytes. */
export interface Nack {
  seq: number
  offset: number
  /** Numbers the NACKs of a request; the RESYNC that answers carries it back. */
  resync: number
}

/**
 * deliver: hand the frame on. drop: ignore it. resynced: the resend begins.
 * A Nack: send it. unreadable-error: the sender ended the request with an
 * ERROR whose payload arrived damaged; asking again would only run it again.
 */
export type Verdict = 'deliver' | 'drop' | 'resynced' | 'unreadable-error' | Nack

/**
 * NACKs in a row with nothing delivered in between before the receiver gives
 * up on its own. Above the sender's default bound (8 halvings + 8 retries),
 * so normally the sender's ECORRUPT arrives first; this one holds when even
 * that cannot get through.
 */
export const MAX_STALLS = 32

export class ReceiveWindow {
  /** Seq of the next frame to deliver. */
  seq = 0
  /** DATA bytes delivered so far. */
  offset = 0
  /** NACKs sent for this request. */
  nacks = 0
  #resync = 0
  #awaiting = false
  #stalls = 0

  /** True when NACKs have gone unanswered by any good frame for too long: give up. */
  get exhausted(): boolean {
    return this.#stalls > MAX_STALLS
  }

  /** True while waiting for the RESYNC that answers our last NACK. */
  get awaiting(): boolean {
    return this.#awaiting
  }

  accept(frame: ReceivedFrame): Verdict {
    // The header is verified even when the payload is not, so its epoch and seq can be trusted:
    // a frame of the attempt we asked for means the resend has begun.
    const ours = this.#awaiting && frame.epoch === (this.#resync & 0xff)
    // Rule 3: the resend begins.
    if (frame.type === FrameType.RESYNC) {
      // The RESYNC starts the resend; its payload only confirms the full resync number.
      if (!ours || (frame.intact && resyncOf(frame) !== this.#resync)) return 'drop'
      this.#awaiting = false
      this.seq = frame.seq
      return 'resynced'
    }
    // A frame of the resend without its RESYNC (lost): take it as the start, then judge it as any other.
    if (ours) this.#awaiting = false
    // Rule 4: an ERROR ends the request whatever came before: it is the sender's last word.
    if (frame.type === FrameType.ERROR) {
      if (frame.intact) return 'deliver'
      if (!this.#awaiting && frame.epoch === (this.#resync & 0xff)) return 'unreadable-error'
    }
    if (this.#awaiting || frame.seq < this.seq) return 'drop' // discarding, or a duplicate (rule 2)
    if (frame.seq > this.seq || !frame.intact) return this.lost() // rule 2
    // Rule 1.
    this.seq++
    this.#stalls = 0
    if (frame.type === FrameType.DATA) this.offset += payloadLength(frame)
    return 'deliver'
  }

  /** Something of this request may have been lost: ask for everything from the first frame not delivered. */
  lost(): Nack {
    this.#awaiting = true
    this.nacks++
    this.#stalls++
    return { seq: this.seq, offset: this.offset, resync: ++this.#resync }
  }
}

function resyncOf(frame: ReceivedFrame): number | undefined {
  try {
    return (JSON.parse(frame.payload.toString('utf8')) as { resync?: number }).resync
  } catch {
    return undefined
  }
}
