/**
 * warm {path?}: load a file, or every regular file under a directory, into
 * the cache, a few files at a time. PROGRESS frames report how far it got
 * (a few a second); RESULT {files, bytes, totalFiles, totalBytes, full}.
 * Warming stops before a file that would not fit in the cache's free space:
 * loading past the limit would only evict what was just loaded.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { collectGarbageSoon } from '../cache/collect-garbage.js'
import { openFileAt } from '../fs/open-file.js'
import { walk, type WalkedFile } from '../fs/walk.js'
import type { Part } from '../stages/items.js'
import { optionalString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

/** Files loaded at once: enough to keep a disk busy, few enough to stay fair to reads. */
const CONCURRENCY = 4
const PROGRESS_EVERY_MS = 200

export interface WarmProgress {
  files: number
  bytes: number
  totalFiles: number
  totalBytes: number
  full: boolean
}

export async function* warm(args: Record<string, unknown>, ctx: CommandContext, { signal }: CommandIO = {}): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const files: WalkedFile[] = []
  const progress: WarmProgress = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false }
  // Listing a big tree takes a while: say so as it goes (silence would look like a lost frame).
  let lastReport = Date.now()
  for await (const f of walk(ctx.jail, path, signal)) {
    files.push(f)
    progress.totalFiles++
    progress.totalBytes += f.size
    if (Date.now() - lastReport >= PROGRESS_EVERY_MS) {
      lastReport = Date.now()
      yield { kind: 'progress', body: { ...progress } }
    }
  }

  let next = 0
  /** No new file is started (the cache is full); files already under way finish. */
  let full = false
  /** The request was cancelled or failed: stop at once. */
  let stopped = false
  const loaded: { key: string; size: number }[] = []
  let budget = ctx.cache.free
  const worker = async () => {
    while (!stopped && !full && !signal?.aborted && next < files.length) {
      const f = files[next++]
      const file = await openFileAt(ctx.jail, f.names, f.rel, ctx.settle).catch(() => null)
      if (!file) continue // vanished or changed type since the walk
      try {
        const missing = file.size - ctx.cache.cachedBytes(file)
        if (missing > budget) {
          progress.full = full = true
          return
        }
        budget -= missing
        const blocks = Math.ceil(file.size / ctx.cache.blockSize)
        try {
          for (let i = 0; i < blocks && !stopped; i++) await ctx.cache.block(file, i, { uncounted: true })
        } catch (err) {
          // Written to while we read it (a growing log, say): skip it, as one that vanished; warm the rest.
          if ((err as { code?: string }).code !== 'ECHANGED') throw err
          budget += missing
          continue
        }
        loaded.push({ key: file.key, size: file.size })
        // A scan-resistant policy may decline to keep a block (its admission window is part of
        // the budget): then the cache is as full as warming can make it.
        if (ctx.cache.cachedBytes(file) < file.size) {
          progress.full = full = true
          return
        }
        ctx.files.remember(f.rel, file)
        progress.files++
        progress.bytes += file.size
      } finally {
        await file.fh.close()
      }
    }
  }
  const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker))
  let done = false
  const finished = workers.then(() => void (done = true))
  try {
    while (!done) {
      await Promise.race([finished, sleep(PROGRESS_EVERY_MS)])
      signal?.throwIfAborted()
      if (!done) yield { kind: 'progress', body: { ...progress } }
    }
    await finished // rethrows a worker's error
  } finally {
    stopped = true
    await workers.catch(() => {})
    // A walk leaves a heap's worth of stats and names behind: give it back now, not at V8's leisure.
    collectGarbageSoon()
  }
  // Report what is in the cache now: a later file may have pushed out part of an earlier one.
  const kept = loaded.map((f) => ctx.cache.cachedBytes(f))
  yield { kind: 'result', body: { ...progress, files: kept.filter((b, i) => b === loaded[i].size).length, bytes: kept.reduce((a, b) => a + b, 0) } }
}
