/**
 * warm {path?} or warm {paths}: load a file, every regular file under a
 * directory, or exactly the files listed (in that order: an epoch's sample
 * order, say) into the cache, a few files at a time. PROGRESS frames report
 * how far it got (a few a second); RESULT {files, bytes, totalFiles,
 * totalBytes, full, skipped}. A listed path that is missing, a directory or
 * refused is skipped and counted (`skipped`, the first few in
 * `skippedPaths` with their codes); the others are still loaded.
 * Warming stops before a file that would not fit in the cache's free space:
 * loading past the limit would only evict what was just loaded.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { collectGarbageSoon } from '../cache/collect-garbage.js'
import { error, toCacheservError } from '../errors.js'
import { identityOf, openFileAt } from '../fs/open-file.js'
import { Jail } from '../fs/jail.js'
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
  /** For a list: the paths not loaded (missing, not regular files, or refused). */
  skipped?: number
}

/** Paths one warm request may list (a longer list is sent as several requests). */
export const MAX_WARM_PATHS = 100_000
/** Skipped paths named in the result. */
const SHOWN_SKIPS = 20

export async function* warm(args: Record<string, unknown>, ctx: CommandContext, { signal }: CommandIO = {}): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const listed = pathList(args)
  const files: WalkedFile[] = []
  const progress: WarmProgress = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, ...(listed ? { skipped: 0 } : {}) }
  const skippedPaths: { path: string; code: string }[] = []
  const skip = (p: string, err: unknown) => {
    progress.skipped = (progress.skipped ?? 0) + 1
    if (skippedPaths.length < SHOWN_SKIPS) skippedPaths.push({ path: p, code: toCacheservError(err).code })
  }
  // Listing a big tree takes a while: say so as it goes (silence would look like a lost frame).
  let lastReport = Date.now()
  for await (const f of listed ? lookUp(ctx, listed, skip, signal) : walk(ctx.jail, path, signal, undefined, ctx.meta)) {
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
      // Room is taken in the order of the files, before any await: the last file loaded is the
      // last that fits, whichever worker opens its file first.
      const missing = f.size - ctx.cache.cachedBytes(f)
      if (missing > budget) {
        progress.full = full = true
        return
      }
      budget -= missing
      const file = await openFileAt(ctx.jail, f.names, f.rel, ctx.settle).catch((err: unknown) => {
        if (listed) skip(f.rel, err)
        return null
      })
      if (!file) {
        budget += missing
        continue // vanished or changed type since the walk
      }
      try {
        const blocks = Math.ceil(file.size / ctx.cache.blockSize)
        try {
          for (let i = 0; i < blocks && !stopped; i++) await ctx.cache.block(file, i, { uncounted: true })
        } catch (err) {
          // Written to while we read it (a growing log, say): skip it, as one that vanished; warm the rest.
          if ((err as { code?: string }).code !== 'ECHANGED') throw err
          if (listed) skip(f.rel, err)
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
  const result = { ...progress, files: kept.filter((b, i) => b === loaded[i].size).length, bytes: kept.reduce((a, b) => a + b, 0) }
  yield { kind: 'result', body: listed ? { ...result, skippedPaths } : result }
}

/** The `paths` argument: a list of strings, or null when the request names no list. */
function pathList(args: Record<string, unknown>): string[] | null {
  const v = args.paths
  if (v === undefined || v === null) return null
  if (!Array.isArray(v) || !v.every((p) => typeof p === 'string')) throw error('EBADREQ', '"paths" must be a list of strings')
  if (v.length > MAX_WARM_PATHS) throw error('EBADREQ', `"paths" lists ${v.length} paths; at most ${MAX_WARM_PATHS} a request`)
  if (args.path !== undefined && args.path !== null) throw error('EBADREQ', 'give "path" or "paths", not both')
  return v as string[]
}

/** Each listed path that names a regular file, in order, as a walk would give it; the others are skipped. */
async function* lookUp(ctx: CommandContext, paths: string[], skip: (path: string, err: unknown) => void, signal?: AbortSignal): AsyncGenerator<WalkedFile, void, void> {
  for (const p of paths) {
    signal?.throwIfAborted()
    let rel: string
    try {
      rel = Jail.segments(p).join('/')
    } catch (err) {
      skip(p, err)
      continue
    }
    const found = await ctx.jail.lookup(p).catch((err: unknown) => {
      skip(p, err)
      return null
    })
    if (!found) continue
    try {
      if (found.st.isFile()) yield { rel, names: found.names, size: Number(found.st.size), key: identityOf(found.st) }
      else skip(p, error(found.st.isDirectory() ? 'EISDIR' : 'EACCES', `${p} is not a regular file`))
    } finally {
      found.close()
    }
  }
}
