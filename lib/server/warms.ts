/**
 * Warms started on the server itself (--warm, CacheServer.warm) rather than
 * by a client: they belong to no connection, so the server's close stops
 * them, and each closes its files on the way out.
 */
import type { CommandContext } from '../commands/context.js'
import { warm, type WarmProgress } from '../commands/warm.js'
import { error } from '../errors.js'
import type { Part } from '../stages/items.js'

export class Warms {
  #ctx: CommandContext
  #running = new Set<{ run: AsyncGenerator<Part, void, void>; stop: AbortController }>()

  constructor(ctx: CommandContext) {
    this.#ctx = ctx
  }

  /** Load a file or a tree into the cache (as the `warm` command does); `onProgress` sees how far it got. */
  async run(path: string, onProgress?: (p: WarmProgress) => void): Promise<WarmProgress> {
    const stop = new AbortController()
    const run = warm({ path }, this.#ctx, { signal: stop.signal })
    const entry = { run, stop }
    this.#running.add(entry)
    try {
      for await (const part of run) {
        if (part.kind === 'progress') onProgress?.(part.body as WarmProgress)
        if (part.kind === 'result') return part.body as WarmProgress
      }
    } finally {
      this.#running.delete(entry)
    }
    // Only stop() ends a warm early.
    throw closedWhileWarming()
  }

  /** Stop every warm running (each fails with ESHUTDOWN); resolves once they have closed their files. */
  stop(): Promise<unknown> {
    const warms = [...this.#running]
    for (const { stop } of warms) stop.abort(closedWhileWarming())
    return Promise.all(warms.map(({ run }) => run.return()))
  }
}

function closedWhileWarming(): Error {
  return error('ESHUTDOWN', 'the server closed before warm finished')
}
