/**
 * Full garbage collections on demand. Dropped blocks are Buffers outside the
 * JS heap: V8 frees them only at a major GC, which it starts on its own once
 * external memory has grown by tens of MiB since the last one. A server whose
 * cache is full drops a block for every block it reads, and one that closes
 * stalled connections drops many at once; closed connections also leave their
 * streams in the old generation, which V8 shrinks only after a full
 * collection. Collecting once enough has gone, and once more when things are
 * quiet, keeps that garbage, and so RSS, within the documented bound.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:gc')

/** At most one forced collection per this many ms: each costs a few ms of CPU. */
const MIN_INTERVAL_MS = 200
/** Bytes of blocks let go that make a collection worth its cost. */
const DROPPED_BYTES = 16 * 1024 * 1024
/** Connections closed that make one worth it: each leaves tens of KiB of streams behind. */
const CLOSED_CONNECTIONS = 64
/** Whatever is left over is collected once nothing more has been let go for this long. */
const QUIET_MS = 1000

let gc: (() => void) | null | undefined
let last = 0
let scheduled: NodeJS.Timeout | null = null
let quiet: NodeJS.Timeout | null = null
/** Let go of since the last collection was scheduled. */
let dropped = 0
let closed = 0

function collector(): (() => void) | null {
  if (gc !== undefined) return gc
  try {
    // The flag makes `gc` a global of contexts created from now on; this one keeps it.
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  } catch {
    gc = null
  }
  return gc
}

/** Collect soon (after the teardown under way has dropped its references), unless one ran within MIN_INTERVAL_MS. */
export function collectGarbageSoon(): void {
  if (scheduled) return
  // What is let go from here on counts toward the next collection.
  dropped = 0
  closed = 0
  const wait = Math.max(0, last + MIN_INTERVAL_MS - Date.now(), 50)
  scheduled = setTimeout(() => {
    scheduled = null
    const run = collector()
    if (!run) return
    const before = process.memoryUsage().arrayBuffers
    run()
    // Counted from the end: on a busy host the collection may start well after the timer fired.
    last = Date.now()
    debug('collected: %d MiB of buffers freed', Math.round((before - process.memoryUsage().arrayBuffers) / 1048576))
  }, wait)
  scheduled.unref()
}

/** `bytes` of file data are no longer referenced by the server. */
export function noteDropped(bytes: number): void {
  dropped += bytes
  settle()
}

/** A connection closed. */
export function noteConnectionClosed(): void {
  closed++
  settle()
}

function settle(): void {
  if (dropped >= DROPPED_BYTES || closed >= CLOSED_CONNECTIONS) collectGarbageSoon()
  if (quiet) quiet.refresh()
  else {
    quiet = setTimeout(() => {
      quiet = null
      if (dropped > 0 || closed > 0) collectGarbageSoon()
    }, QUIET_MS)
    quiet.unref()
  }
}
