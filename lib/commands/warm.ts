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
import { setImmediate as loopTurn, setTimeout as sleep } from 'node:timers/promises'
import { collectGarbageSoon } from '../cache/collect-garbage.js'
import { error, toCacheservError } from '../errors.js'
import { openFile, openFileAt, type OpenFile } from '../fs/open-file.js'
import { Jail } from '../fs/jail.js'
import { walk, type WalkedFile } from '../fs/walk.js'
import type { Part } from '../stages/items.js'
import { optionalFlag, optionalString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

/** Files loaded at once: enough to keep a disk busy, few enough to stay fair to reads. */
const CONCURRENCY = 4
const PROGRESS_EVERY_MS = 200
/** Listed files passed over (see passOver) between two turns of the event loop. */
const PASS_SLICE = 64

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
const MAX_WARM_PATHS = 100_000
/** Skipped paths named in the result. */
const SHOWN_SKIPS = 20

export async function* warm(args: Record<string, unknown>, ctx: CommandContext, { signal }: CommandIO = {}): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const listed = pathList(args)
  // A prefetch (an epoch's read-ahead): it keeps out of the way of the disk reads of requests.
  const idle = optionalFlag(args, 'idle')
  const progress: WarmProgress = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, ...(listed ? { skipped: 0 } : {}) }
  const skippedPaths: { path: string; code: string }[] = []
  const skip = (p: string, err: unknown) => {
    progress.skipped = (progress.skipped ?? 0) + 1
    if (skippedPaths.length < SHOWN_SKIPS) skippedPaths.push({ path: p, code: toCacheservError(err).code })
  }
  // A directory is walked first, so its totals are known before loading starts (listing a big tree
  // takes a while: say so as it goes, silence would look like a lost frame). A list is not: it is
  // an announcement of what a client will read next, so its first files are loaded at once.
  const walked: WalkedFile[] = []
  if (!listed) {
    let lastReport = Date.now()
    for await (const f of walk(ctx.jail, path, signal, undefined, ctx.meta)) {
      walked.push(f)
      progress.totalFiles++
      progress.totalBytes += f.size
      if (Date.now() - lastReport >= PROGRESS_EVERY_MS) {
        lastReport = Date.now()
        yield { kind: 'progress', body: { ...progress } }
      }
    }
  }
  const count = listed ? listed.length : walked.length
  /** What file `i` is, before its turn: the walk says; a listed path is looked at (opened) now. */
  const find = async (i: number): Promise<Candidate> => {
    if (!listed) return { ...walked[i], file: null }
    const rel = listed[i]
    try {
      const file = await openFile(ctx.jail, rel, ctx.settle)
      return { rel: Jail.segments(rel).join('/'), names: null, size: file.size, key: file.key, file }
    } catch (err) {
      return { rel, skipped: err }
    }
  }

  let next = 0
  /** No new file is started (the cache is full); files already under way finish. */
  let full = false
  /** The request was cancelled or failed: stop at once. */
  let stopped = false
  /** Aborted with `stopped`: frees workers of an idle warm waiting for the disk to be quiet. */
  const halt = new AbortController()
  const loaded: { key: string; size: number }[] = []
  let budget = ctx.cache.free
  /** Settled when the file before the next one taken has had its turn: room and counts go in list order. */
  let turn = Promise.resolve()
  /**
   * A listed file that needs nothing, passed over at once (no open, no turn): read moments
   * ago and still all cached (a later epoch), counted as loaded; or being read by a request
   * now, left to it. Hints only: a file changed since is a prefetch missed, and the read
   * checks for itself.
   */
  const passOver = (rel: string): boolean => {
    const known = ctx.files.remembered(rel)
    if (known && ctx.cache.cachedBytes(known) === known.size) {
      loaded.push(known)
      progress.files++
      progress.bytes += known.size
      progress.totalFiles++
      progress.totalBytes += known.size
      return true
    }
    return ctx.files.isBeingRead(rel)
  }
  const worker = async () => {
    while (!stopped && !full && !signal?.aborted && next < count) {
      if (listed) {
        for (let run = 1; !stopped && next < count && passOver(listed[next]); run++) {
          next++
          // A long run of files that need nothing (a later epoch's): let requests in between.
          if (run % PASS_SLICE === 0) await loopTurn()
        }
      }
      if (stopped || next >= count) return
      if (idle && !ctx.cache.diskQuiet) {
        // Not even an open while requests read; then look again, the files ahead may be theirs by now.
        await ctx.cache.diskIdle(halt.signal)
        continue
      }
      const i = next++
      const before = turn
      let done!: () => void
      turn = new Promise((resolve) => (done = resolve))
      let f: Candidate | null = null
      try {
        f = await find(i)
        await before
        // Stopped, or full at an earlier file: this one was looked at in vain.
        if (stopped || full) return
        if ('skipped' in f) {
          skip(f.rel, f.skipped)
          continue
        }
        if (listed) {
          progress.totalFiles++
          progress.totalBytes += f.size
        }
        // Room is taken in the order of the files: the last file loaded is the last that fits,
        // whichever worker opened its file first.
        const missing = f.size - ctx.cache.cachedBytes(f)
        if (missing > budget) {
          progress.full = full = true
          return
        }
        budget -= missing
        done()
        if (!(await load(f, missing))) return
      } finally {
        done()
        if (f && 'file' in f) await f.file?.fh.close()
      }
    }
  }
  /** Load a file whose room is taken; false once the cache is full. */
  const load = async (f: Found, missing: number): Promise<boolean> => {
    if (missing === 0 && !f.file) {
      // All cached already, and known to be this version: counted without opening it.
      loaded.push({ key: f.key, size: f.size })
      progress.files++
      progress.bytes += f.size
      return true
    }
    // Opened at its turn: a walked file, or a known one no longer all cached.
    const file = f.file ?? (await (f.names ? openFileAt(ctx.jail, f.names, f.rel, ctx.settle) : openFile(ctx.jail, f.rel, ctx.settle)).catch(() => null))
    if (!file) {
      budget += missing
      return true // vanished or changed type since the walk
    }
    f.file = file
    const blocks = Math.ceil(file.size / ctx.cache.blockSize)
    try {
      for (let i = 0; i < blocks && !stopped; i++) await ctx.cache.block(file, i, { uncounted: true, ...(idle ? { idle, signal: halt.signal } : {}) })
    } catch (err) {
      // Written to while we read it (a growing log, say): skip it, as one that vanished; warm the rest.
      if ((err as { code?: string }).code !== 'ECHANGED') throw err
      if (listed) skip(f.rel, err)
      budget += missing
      return true
    }
    loaded.push({ key: file.key, size: file.size })
    // A scan-resistant policy may decline to keep a block (its admission window is part of
    // the budget): then the cache is as full as warming can make it.
    if (ctx.cache.cachedBytes(file) < file.size) {
      progress.full = full = true
      return false
    }
    ctx.files.remember(f.rel, file)
    progress.files++
    progress.bytes += file.size
    return true
  }
  const workers = Promise.all(Array.from({ length: CONCURRENCY }, worker))
  let finishedAll = false
  const finished = workers.then(() => void (finishedAll = true))
  try {
    while (!finishedAll) {
      await Promise.race([finished, sleep(PROGRESS_EVERY_MS)])
      signal?.throwIfAborted()
      if (!finishedAll) yield { kind: 'progress', body: { ...progress } }
    }
    await finished // rethrows a worker's error
  } finally {
    stopped = true
    halt.abort()
    await workers.catch(() => {})
    // A walk leaves a heap's worth of stats and names behind: give it back now, not at V8's leisure.
    // (A list leaves little, and comes again and again as an epoch's announcement.)
    if (!listed) collectGarbageSoon()
  }
  // Report what is in the cache now: a later file may have pushed out part of an earlier one.
  const kept = loaded.map((f) => ctx.cache.cachedBytes(f))
  const result = { ...progress, files: kept.filter((b, i) => b === loaded[i].size).length, bytes: kept.reduce((a, b) => a + b, 0) }
  yield { kind: 'result', body: listed ? { ...result, skippedPaths } : result }
}

/** A file to warm, as known before its turn: from the walk (`names`, opened at its turn), or a listed path already opened or known. */
interface Found {
  rel: string
  names: string[] | null
  size: number
  key: string
  file: OpenFile | null
}

/** A file to warm, or a listed path that is skipped, with why. */
type Candidate = Found | { rel: string; skipped: unknown }

/** The `paths` argument: a list of strings, or null when the request names no list. */
function pathList(args: Record<string, unknown>): string[] | null {
  const v = args.paths
  if (v === undefined || v === null) return null
  if (!Array.isArray(v) || !v.every((p) => typeof p === 'string')) throw error('EBADREQ', '"paths" must be a list of strings')
  if (v.length > MAX_WARM_PATHS) throw error('EBADREQ', `"paths" lists ${v.length} paths; at most ${MAX_WARM_PATHS} a request`)
  if (args.path !== undefined && args.path !== null) throw error('EBADREQ', 'give "path" or "paths", not both')
  return v as string[]
}
