/**
 * Requests of one connection waiting for a job slot while its maxInFlight
 * jobs run. They start in arrival order as jobs end. Parking them, rather
 * than holding the input at once, keeps the `cancel` and `nack` lines behind
 * them flowing, up to MAX_PARKED.
 */
import type { CommandSpec } from '../commands/context.js'
import type { Request } from '../protocol/request.js'
import type { ResendPoint } from './resends.js'

/**
 * A new request (`req`), possibly NACKed while it waited (`resync`: it then
 * starts as that resend), or a resend of one that had finished (`resume`),
 * which counts against the limits like any.
 */
export interface Parked {
  id: number
  spec: CommandSpec
  req?: Request
  resync?: number
  resume?: ResendPoint
}

/** Requests parked beyond which the connection's input is not read. */
export const MAX_PARKED = 32

export class ParkedRequests {
  #queue: Parked[] = []

  get length(): number {
    return this.#queue.length
  }

  /** As many wait as may: read no more input until one starts. */
  get full(): boolean {
    return this.#queue.length >= MAX_PARKED
  }

  has(id: number): boolean {
    return this.#queue.some((p) => p.id === id)
  }

  push(p: Parked): void {
    this.#queue.push(p)
  }

  /** The next to start. */
  shift(): Parked | undefined {
    return this.#queue.shift()
  }

  /** Request `id`, out of the queue (it was cancelled, or a NACK replaces its resend). */
  take(id: number): Parked | undefined {
    const at = this.#queue.findIndex((p) => p.id === id)
    return at === -1 ? undefined : this.#queue.splice(at, 1)[0]
  }

  /**
   * A NACK with resync number `resync` for request `id` before it started: nothing of it was
   * lost, so it keeps its place and starts as that resend (behind a RESYNC the receiver waits
   * for). False when `id` is not a new request waiting here.
   */
  resyncWaiting(id: number, resync: number): boolean {
    const p = this.#queue.find((q) => q.id === id)
    if (!p?.req) return false
    p.resync = resync
    return true
  }

  /** Every waiting request, out of the queue. */
  clear(): Parked[] {
    return this.#queue.splice(0)
  }
}
