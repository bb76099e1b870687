/**
 * A walk's look ahead into a directory: the entries it will have to look up
 * and read next (subdirectories the metadata cache does not hold, symlinks)
 * are opened while it is still in the ones before.
 */
import type { Listing } from './listing.js'
import type { WalkedFile } from './walk.js'

/** What a name led to: a file, or a directory with its listing. */
export interface Opened {
  names: string[]
  file?: WalkedFile
  listing?: Listing
}

/** Directories (and symlinks) of a listing opened and read ahead of the walk, at most this many at once. */
const OPEN_AHEAD = 8

/**
 * The next few entries of a directory that must be looked up and read
 * (directories not held in the metadata cache, symlinks) are opened while
 * the walk is still in the ones before: on a cold disk, reading one
 * directory at a time waits on each in turn.
 */
export class OpenAhead {
  #pending = new Map<number, Promise<{ ok: Opened | null } | { err: unknown }>>()
  /** Next entry to consider. */
  #next = 0
  #stopped = false

  constructor(
    private readonly listing: Listing,
    private readonly open: (i: number) => Promise<Opened | null>,
    private readonly wanted: (i: number) => boolean,
  ) {}

  /** What entry `i` led to (opened now if it was not already). */
  async take(i: number): Promise<Opened | null> {
    if (this.#next <= i) this.#next = i + 1
    const p = this.#pending.get(i) ?? this.#start(i)
    this.#pending.delete(i)
    this.#fill()
    const r = await p
    if ('err' in r) throw r.err
    return r.ok
  }

  /** The walk went into entry `i` another way (the metadata cache came to hold it meanwhile): its place goes to the next. */
  skip(i: number): void {
    if (this.#next <= i) this.#next = i + 1
    this.#pending.delete(i)
    this.#fill()
  }

  /** Let what is under way finish on its own (its descriptors are closed as it does). */
  stop(): void {
    this.#stopped = true
    this.#pending.clear()
  }

  #start(i: number) {
    return this.open(i).then(
      (ok) => ({ ok }),
      (err: unknown) => ({ err }),
    )
  }

  #fill(): void {
    while (!this.#stopped && this.#pending.size < OPEN_AHEAD && this.#next < this.listing.names.length) {
      const i = this.#next++
      if (this.wanted(i)) this.#pending.set(i, this.#start(i))
    }
  }
}
