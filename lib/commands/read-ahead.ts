/**
 * Read-ahead for a request that names its files in advance (readv): while
 * one file is sent, the next few are opened and their first blocks loaded
 * into the cache, a few at a time, so the disk reads of a cold list overlap
 * instead of waiting one behind the other. When the request reaches such a
 * file, it finds it known and cached (KnownFiles) and sends it at once.
 *
 * What it loads is the cache's like any block (within its budget, evicted as
 * any other); its disk reads yield to those of readers (`later`), and a load
 * that fails is only skipped: the request meets the failure itself, in its
 * own words, when it reaches that file.
 */
import { openFile } from '../fs/open-file.js'
import type { Wanted } from './args.js'
import type { CommandContext } from './context.js'

/** Files ahead of the one being sent that are loaded at once. */
const READ_AHEAD_FILES = 4
/** Blocks of one file loaded ahead at most: a big file is read at its turn. */
const READ_AHEAD_BLOCKS = 4

export class ReadAhead {
  #ctx: CommandContext
  #wants: readonly Wanted[]
  #next = 0
  /** The entry being sent: a finished load refills the window around it, not around the entry it started for. */
  #at = 0
  #running = 0
  #stopped = false

  constructor(ctx: CommandContext, wants: readonly Wanted[]) {
    this.#ctx = ctx
    this.#wants = wants
  }

  /** Entry `i` is being sent: keep the files after it loading, up to READ_AHEAD_FILES at once. */
  at(i: number): void {
    if (i > this.#at) this.#at = i
    if (this.#next <= this.#at) this.#next = this.#at + 1
    while (!this.#stopped && this.#running < READ_AHEAD_FILES && this.#next < this.#wants.length && this.#next <= this.#at + READ_AHEAD_FILES) {
      const want = this.#wants[this.#next++]
      this.#running++
      void this.#load(want)
        .catch(() => {})
        .finally(() => {
          this.#running--
          this.at(this.#at)
        })
    }
  }

  /** The request ended: nothing more is started (loads under way finish; their blocks stay cached). */
  stop(): void {
    this.#stopped = true
  }

  async #load(want: Wanted): Promise<void> {
    const ctx = this.#ctx
    if (ctx.files.knows(want.path)) return // read lately: its blocks are likely cached (a stat here would cost a hot read)
    const file = await openFile(ctx.jail, want.path, ctx.settle)
    try {
      const bs = ctx.cache.blockSize
      const from = want.offset ?? 0
      const end = want.length === undefined ? file.size : Math.min(file.size, from + want.length)
      if (from >= end) return
      const first = Math.floor(from / bs)
      const last = Math.min(Math.ceil(end / bs) - 1, first + READ_AHEAD_BLOCKS - 1)
      for (let i = first; i <= last && !this.#stopped; i++) await ctx.cache.block(file, i, { uncounted: true, later: () => true })
      ctx.files.remember(want.path, file)
    } finally {
      await file.fh.close()
    }
  }
}
