/**
 * Blocks on their way into the cache: one read per block however many
 * readers want it (single-flight), started once the memory budget has room
 * for the block outside the cache. The read waits as its most urgent reader
 * would: as one whose client stopped reading only if every reader's client
 * has, and as soon as the shortest of their requests (see MemoryBudget).
 */
import type { MemoryBudget, ReserveOptions } from './memory-budget.js'

/** How a reader waits for a block's read (see BlockUse). */
export interface ReadWait {
  /** Gives up waiting for memory. */
  signal?: AbortSignal
  /** The reader's client is not taking its output. */
  later?: () => boolean
  /** Bytes the reader's request has left to send. */
  left?: number
}

/** The steps of one block's read. */
export interface ReadSteps {
  /** Read the block's bytes. */
  read: () => Promise<Buffer>
  /** Take the block in, before its room in the memory budget is given back. */
  keep: (block: Buffer) => void
  /** Told of the block once its read is over, before any reader that joined it. */
  done: (block: Buffer) => void
}

interface Pending {
  read: Promise<Buffer>
  laters: (() => boolean)[]
  lefts: number[]
}

export class BlockReads {
  #pending = new Map<string, Pending>()
  readonly #memory: MemoryBudget | null

  constructor(memory: MemoryBudget | null) {
    this.#memory = memory
  }

  /** The read of `key` under way, now waited on by one more reader; undefined when there is none. */
  join(key: string, wait: ReadWait): Promise<Buffer> | undefined {
    const pending = this.#pending.get(key)
    if (!pending) return undefined
    pending.laters.push(wait.later ?? never)
    pending.lefts.push(wait.left ?? Infinity)
    return pending.read
  }

  /**
   * Read block `key` of `length` bytes, which readers may join until it is
   * over. Rejects with GaveUp when the wait for memory ends first (`signal`,
   * the signal of the reader that started it).
   */
  start(key: string, length: number, wait: ReadWait, steps: ReadSteps): Promise<Buffer> {
    const laters = [wait.later ?? never]
    const lefts = [wait.left ?? Infinity]
    const read = this.#read(length, { signal: wait.signal, later: () => laters.every((l) => l()), left: () => Math.min(...lefts) }, steps).then(
      (buf) => {
        this.#pending.delete(key)
        steps.done(buf)
        return buf
      },
      (err) => {
        this.#pending.delete(key)
        throw err
      },
    )
    this.#pending.set(key, { read, laters, lefts })
    return read
  }

  async #read(length: number, wait: ReserveOptions, { read, keep }: ReadSteps): Promise<Buffer> {
    // Room for the block outside the cache until the cache takes it (see MemoryBudget).
    if (this.#memory) {
      try {
        await this.#memory.reserve(length, wait)
      } catch (err) {
        throw new GaveUp(err)
      }
    }
    try {
      const buf = await read()
      // Kept before its room is given back: a leased block this pushes out of the cache is
      // charged in its place, so the read never holds more than it reserved (and no waiter is
      // let in on bytes the charge is about to take).
      keep(buf)
      return buf
    } finally {
      // From here the cache holds the block, or its leases charge it (or nothing holds it).
      this.#memory?.free(length)
    }
  }
}

const never = () => false

/** A read that stopped waiting for memory because the request that started it stopped. */
export class GaveUp extends Error {
  constructor(reason: unknown) {
    super('stopped while waiting for memory', { cause: reason })
  }
}
