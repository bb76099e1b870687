/** What `stats` reports of a server (lib/server/server.ts), the counters of its parts together. */
import type { CacheStats } from '../cache/block-cache.js'
import type { MetaStats } from '../fs/meta-cache.js'
import type { SharedStats } from '../tier/shared-tier.js'

export interface ServerStats extends CacheStats, MetaStats, Omit<SharedStats, 'sharedUp'> {
  /** Whether the shared tier (Redis) is being asked now; null without one. */
  sharedUp: boolean | null
  /** NACKs received, each answered by a resend. */
  nacks: number
  /** File data held outside the cache (see ServerOptions.maxBuffered), and its limit. */
  bufferedBytes: number
  bufferedLimit: number
  /** Connections closed because they stopped reading while others waited for that memory. */
  stalledClosed: number
  connections: number
  totalConnections: number
  bytesServed: number
  /** File bytes same-host clients were given in shared memory (`locate`), which they read themselves: not in bytesServed. */
  locatedBytes: number
  /** Of bytesServed, those sent by the HTTP gateway. */
  httpBytesServed: number
  /** Files pinned (their bytes are pinnedBytes). */
  pinnedFiles: number
  /** The shared-memory store: its directory, and the blocks in it and the bytes of pages they take; null when blocks live on the heap. */
  shm: { dir: string; blocks: number; bytes: number } | null
  uptime: number
}

/** The shared-tier counters of a server without one. */
export const NO_SHARED_TIER: Pick<ServerStats, keyof SharedStats> = {
  sharedHits: 0,
  sharedMisses: 0,
  sharedErrors: 0,
  sharedCorrupt: 0,
  sharedReadBytes: 0,
  sharedWrittenBytes: 0,
  sharedSkipped: 0,
  sharedUp: null,
}
