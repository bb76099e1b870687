/**
 * One request running on a connection: its command's generator, pulled one
 * part at a time. Pulls run concurrently across jobs, so a job waiting on the
 * disk (or on uploaded bytes) does not hold up the others; each job holds at
 * most one part that the connection has not taken yet.
 */
import type { Part } from './items.js'
import type { Inbox } from './inbox.js'

export type Outcome = { part: Part } | { done: true } | { error: unknown }

export class Job {
  readonly id: number
  /** 0, or the resync number of the NACK that started this job. */
  readonly attempt: number
  /** Uploaded frames, for commands that take them. */
  readonly inbox: Inbox | null
  #gen: AsyncGenerator<Part, void, void>
  #pulling = false
  #outcome: Outcome | null = null
  #onSettled: () => void

  constructor(id: number, gen: AsyncGenerator<Part, void, void>, opts: { attempt?: number; inbox?: Inbox | null; onSettled: () => void }) {
    this.id = id
    this.#gen = gen
    this.attempt = opts.attempt ?? 0
    this.inbox = opts.inbox ?? null
    this.#onSettled = opts.onSettled
  }

  /** A part (or the end, or an error) is waiting to be taken. */
  get ready(): boolean {
    return this.#outcome !== null
  }

  /** Start producing the next part, unless one is on its way or waiting. */
  pull(): void {
    if (this.#pulling || this.#outcome) return
    this.#pulling = true
    this.#gen.next().then(
      (r) => this.#settle(r.done ? { done: true } : { part: r.value }),
      (error: unknown) => this.#settle({ error }),
    )
  }

  /** Take the waiting outcome. */
  take(): Outcome | null {
    const outcome = this.#outcome
    this.#outcome = null
    return outcome
  }

  /** Stop for good: ends the uploaded-frame stream and runs the command's cleanup (closes fds). */
  stop(): void {
    this.inbox?.close()
    this.#gen.return().catch(() => {})
  }

  #settle(outcome: Outcome): void {
    this.#pulling = false
    this.#outcome = outcome
    this.#onSettled()
  }
}
