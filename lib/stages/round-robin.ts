/**
 * The order in which a connection's running jobs get to send: round-robin,
 * so a large read does not hold a small stat behind it. It also decides
 * which jobs may work ahead of the socket: every job may make its next part
 * at once, except that at most MAX_AHEAD bulky ones (reads, warms: a part
 * may be a whole block) do so together, so a connection holds a few blocks
 * ahead of its socket, not one per request in flight.
 */
import type { Job } from './job.js'

/** Bulky jobs that may make or hold a part at once, per connection. */
export const MAX_AHEAD = 4

export class RoundRobin {
  #ready: Job[] = []

  /** Queue a job at the back (a new one, or one that has just had its turn). */
  add(job: Job): void {
    this.#ready.push(job)
  }

  remove(job: Job): void {
    const i = this.#ready.indexOf(job)
    if (i !== -1) this.#ready.splice(i, 1)
  }

  /**
   * The first job, in turn, with a part ready, taken out of the queue (add it
   * back if it goes on); the others are asked for their next parts, within
   * MAX_AHEAD. Null when none is ready yet: the first to settle says so.
   */
  next(): Job | null {
    let ahead = 0
    for (const job of this.#ready) if (job.busy && job.bulky) ahead++
    for (let i = 0; i < this.#ready.length; i++) {
      const job = this.#ready[i]
      if (job.ready) {
        this.#ready.splice(i, 1)
        return job
      }
      if (job.busy || !job.bulky) job.pull()
      else if (ahead < MAX_AHEAD) {
        job.pull()
        ahead++
      }
    }
    return null
  }
}
