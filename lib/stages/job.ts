/**
 * One request running on a connection: its command's generator, pulled one
 * part at a time. Pulls run concurrently across jobs, so a job waiting on the
 * disk (or on uploaded bytes) does not hold up the others; each job holds at
 * most one part that the connection has not taken yet.
 */
import type { Part } from './items.js'
import type { Inbox } from './inbox.js'

export type Outcome = { part: Part } | { done: true } | { error: unknown }

/** A PROGRESS part with nothing to report: "still working" (see Job's heartbeat). */
const HEARTBEAT: Part = { kind: 'progress', body: {} }

export class Job {
  readonly id: number
  /** 0, or the resync number of the NACK that started this job. */
  readonly attempt: number
  /** Its parts may be whole blocks (a read): the connection bounds how many such jobs run ahead. */
  readonly bulky: boolean
  /** Uploaded frames, for commands that take them. */
  readonly inbox: Inbox | null
  #gen: AsyncGenerator<Part, void, void>
  /** The generator's next outcome, while it is being made (it outlives heartbeats). */
  #next: Promise<Outcome> | null = null
  /** A pull is under way: the connection wants this job's next part. */
  #waiting = false
  #outcome: Outcome | null = null
  #heartbeat: number
  #beat: NodeJS.Timeout | null = null
  #onSettled: () => void
  #abort: AbortController
  #stopped = false

  /**
   * With `heartbeat` (ms), a pull that takes longer yields an empty PROGRESS
   * part meanwhile, and another after each further `heartbeat` ms: a command
   * that is silent for long (ls of a huge directory, a write's fsync) must
   * not look to the client like a lost answer (its progress timeout).
   */
  constructor(id: number, gen: AsyncGenerator<Part, void, void>, opts: { attempt?: number; inbox?: Inbox | null; heartbeat?: number; bulky?: boolean; abort?: AbortController; onSettled: () => void }) {
    this.id = id
    this.#gen = gen
    this.attempt = opts.attempt ?? 0
    this.inbox = opts.inbox ?? null
    this.#heartbeat = opts.heartbeat ?? 0
    this.#onSettled = opts.onSettled
    this.#abort = opts.abort ?? new AbortController()
    this.bulky = opts.bulky ?? true
  }

  /** A part (or the end, or an error) is waiting to be taken. */
  get ready(): boolean {
    return this.#outcome !== null
  }

  /** A part is being made or waits to be taken: the job may hold a block for it. */
  get busy(): boolean {
    return this.#waiting || this.#outcome !== null
  }

  /** Start producing the next part, unless one is on its way or waiting. */
  pull(): void {
    if (this.#waiting || this.#outcome) return
    this.#waiting = true
    const next = (this.#next ??= this.#gen.next().then(
      (r): Outcome => (r.done ? { done: true } : { part: r.value }),
      (error: unknown): Outcome => ({ error }),
    ))
    void next.then((outcome) => {
      // Stale when a heartbeat settled this pull and a later one took the outcome already.
      if (this.#next === next && this.#waiting) this.#settle(outcome)
      // Made after the job stopped: nobody will send it.
      else if (this.#stopped) dropOutcome(outcome)
    })
    if (this.#heartbeat > 0) this.#beat = setTimeout(() => this.#waiting && this.#settle({ part: HEARTBEAT }), this.#heartbeat)
  }

  /** Take the waiting outcome. */
  take(): Outcome | null {
    const outcome = this.#outcome
    this.#outcome = null
    return outcome
  }

  /** Aborted when the job is cancelled or stopped: a command checks it where a step cannot be undone. */
  get signal(): AbortSignal {
    return this.#abort.signal
  }

  /**
   * Ask the command to stop, with `reason`, but let it answer: an upload past
   * the point of no return (its rename) still sends its RESULT. Its input ends.
   */
  cancel(reason: Error): void {
    this.#abort.abort(reason)
    this.inbox?.close()
  }

  /** Stop for good: ends the uploaded-frame stream and runs the command's cleanup (closes fds). */
  stop(): void {
    if (this.#beat) clearTimeout(this.#beat)
    this.#stopped = true
    if (this.#outcome) dropOutcome(this.#outcome)
    this.#outcome = null
    this.#waiting = false
    this.inbox?.close()
    // A command at work (a part in the making) is told through its signal; one paused at a yield (the
    // usual case: its END was taken) runs its cleanup on return(), and an Error per request would be waste.
    if (this.#next && !this.#abort.signal.aborted) this.#abort.abort(new Error('request stopped'))
    this.#gen.return().catch(() => {})
  }

  #settle(outcome: Outcome): void {
    if (this.#beat) clearTimeout(this.#beat)
    this.#beat = null
    this.#waiting = false
    // A heartbeat leaves the generator's next outcome in the making, for the next pull.
    if (!('part' in outcome && outcome.part === HEARTBEAT)) this.#next = null
    this.#outcome = outcome
    this.#onSettled()
  }
}

/** A part that will not be sent gives back the block it holds. */
function dropOutcome(outcome: Outcome): void {
  if ('part' in outcome && outcome.part.kind === 'data') outcome.part.lease?.release()
}
