/**
 * Throttling of token guesses, per client address. Every wrong token from an
 * address is answered (EAUTH) only after a delay that doubles with each
 * further failure from it, so guesses one after another are slow. The right
 * token is answered at once, whatever the address's delay: clients behind one
 * address (a NAT, every unix-socket or loopback client) must not be locked
 * out by a guesser among them. What stands against guesses in parallel is
 * the token's length (the server warns about a short one).
 */
import QuickLRU from 'quick-lru'

/** The delay stops doubling at this many times the first one. */
export const MAX_BACKOFF_FACTOR = 32
/** An address is forgotten once its delay has been over for this long. */
export const FORGET_MS = 10 * 60_000
/** Addresses remembered; the least recently failing ones beyond are forgotten. */
const MAX_PEERS = 4096

interface Peer {
  failures: number
  /** Until when verdicts on this address's connections wait. */
  until: number
}

export class AuthThrottle {
  readonly backoff: number
  // QuickLRU keeps up to twice its maxSize (its two generations).
  #peers = new QuickLRU<string, Peer>({ maxSize: MAX_PEERS / 2 })

  /** `backoff`: ms before the first wrong token from an address is answered; 0 turns throttling off. */
  constructor(backoff: number) {
    this.backoff = backoff
  }

  /**
   * An auth attempt from `peer` was judged `ok`: ms from now before the verdict may be
   * answered. A wrong token waits behind the address's earlier failures and is counted;
   * its delay may run past `deadline` (the connection's auth deadline, a Date.now() time),
   * which then answers it. Null when the address's queue already reaches `deadline`: the
   * attempt is left to the deadline and not counted, so waiting connections do not push
   * the address's delay further out.
   */
  schedule(peer: string, ok: boolean, deadline: number, now = Date.now()): number | null {
    if (this.backoff <= 0) return 0
    let st = this.#peers.get(peer)
    if (st && now > st.until + FORGET_MS) {
      this.#peers.delete(peer)
      st = undefined
    }
    if (ok) return 0
    const start = Math.max(now, st?.until ?? now)
    if (start >= deadline) return null
    const failures = (st?.failures ?? 0) + 1
    const until = start + this.backoff * Math.min(2 ** (failures - 1), MAX_BACKOFF_FACTOR)
    this.#peers.set(peer, { failures, until })
    return until - now
  }
}
