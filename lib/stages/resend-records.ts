/**
 * What a connection remembers of its requests so that it can send a response
 * again after a NACK, also after the response has ended (its last frames may
 * be lost too): the command, its own arguments, the file version its START
 * announced, its page size and how far it got.
 *
 * Records outlive requests, so they are bounded: at most MAX_RECORDS, and
 * MAX_ARG_BYTES of arguments in all (a peer may make each request line
 * 64 KiB). The oldest finished requests are forgotten first; a forgotten
 * one is answered ECORRUPT if NACKed. A request still running keeps its
 * record whatever the bounds.
 */
import type { CommandSpec } from '../commands/context.js'
import type { PageSize } from './page-size.js'

export interface RequestRecord {
  spec: CommandSpec
  /** The request's arguments, all of them: a resend runs the command with the same. */
  args: Record<string, unknown>
  /** The file version the first attempt's START announced: a resend must serve that one. */
  identity?: string
  pages: PageSize
  /** DATA bytes handed on so far, counting from the start of the response (a resend starts at its offset). */
  sent: number
  /** What the command keeps across its attempts to resend exactly what it sent (CommandIO.memo). */
  memo: Record<string, unknown>
}

export const MAX_RECORDS = 1024
export const MAX_ARG_BYTES = 4 * 1024 * 1024

export class ResendRecords {
  #records = new Map<number, { record: RequestRecord; bytes: number }>()
  #bytes = 0
  #running: (id: number) => boolean
  #onForget: (id: number) => void

  /** `running`: the request still has a job (its record is kept). `onForget`: told of every record dropped. */
  constructor(running: (id: number) => boolean, onForget: (id: number) => void = () => {}) {
    this.#running = running
    this.#onForget = onForget
  }

  get size(): number {
    return this.#records.size
  }

  get(id: number): RequestRecord | undefined {
    return this.#records.get(id)?.record
  }

  /** Remember a new request under `id` (replacing any older one), then forget the oldest finished ones beyond the bounds. */
  remember(id: number, record: RequestRecord): void {
    this.#drop(id)
    const bytes = argBytes(record.args)
    this.#records.set(id, { record, bytes })
    this.#bytes += bytes
    for (const old of this.#records.keys()) {
      if (this.#records.size <= MAX_RECORDS && this.#bytes <= MAX_ARG_BYTES) break
      if (old === id || this.#running(old)) continue
      this.forget(old)
    }
  }

  forget(id: number): void {
    this.#drop(id)
    this.#onForget(id)
  }

  #drop(id: number): void {
    const had = this.#records.get(id)
    if (!had) return
    this.#bytes -= had.bytes
    this.#records.delete(id)
  }
}

/** About what the arguments take in memory: their JSON length (they came as JSON). */
function argBytes(args: Record<string, unknown>): number {
  try {
    return JSON.stringify(args).length
  } catch {
    return MAX_ARG_BYTES
  }
}
