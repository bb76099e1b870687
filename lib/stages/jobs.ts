/**
 * The jobs running on one connection, one per request id, taken in turn
 * (RoundRobin) so that no response starves the others.
 */
import type { Job } from './job.js'
import { RoundRobin } from './round-robin.js'

export class Jobs {
  #byId = new Map<number, Job>()
  #turns = new RoundRobin()

  get size(): number {
    return this.#byId.size
  }

  get(id: number): Job | undefined {
    return this.#byId.get(id)
  }

  has(id: number): boolean {
    return this.#byId.has(id)
  }

  values(): IterableIterator<Job> {
    return this.#byId.values()
  }

  /** A new job, at the back of the turns; it replaces any other under its id. */
  add(job: Job): void {
    this.#byId.set(job.id, job)
    this.#turns.add(job)
  }

  /** The next job whose part is ready, out of the turns until `requeue`d; none while all are at work. */
  next(): Job | null {
    return this.#turns.next()
  }

  /** Back in the turns: it has more to send. */
  requeue(job: Job): void {
    this.#turns.add(job)
  }

  /** Stop `job` (its generator's cleanup runs) and forget it; a newer job under its id stays. */
  drop(job: Job): void {
    if (this.#byId.get(job.id) === job) this.#byId.delete(job.id)
    this.#turns.remove(job)
    job.stop()
  }

  dropAll(): void {
    for (const job of [...this.#byId.values()]) this.drop(job)
  }

  /**
   * Jobs that count against maxInFlight. Uploads do not: they need the very
   * input that holding back would stop, so counting them could deadlock a
   * connection full of writes. They have their own cap (MAX_UPLOADS_PER_CONNECTION).
   */
  get running(): number {
    return this.#byId.size - this.uploads
  }

  get uploads(): number {
    let n = 0
    for (const job of this.#byId.values()) if (job.inbox) n++
    return n
  }
}
