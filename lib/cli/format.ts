/** Human-readable output of the client CLI: sizes, rates, the stats summary. */
import { filesize } from 'filesize'
import type { ServerStatsResult, WarmResult } from '../client/client.js'

export function size(bytes: number): string {
  return filesize(bytes, { standard: 'iec' }) as string
}

function count(n: number): string {
  return n.toLocaleString('en-US')
}

function duration(seconds: number): string {
  const s = Math.floor(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m ${String(s % 60).padStart(2, '0')}s`
  if (m > 0) return `${m}m ${String(s % 60).padStart(2, '0')}s`
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(1)} s`
}

export function formatStats(s: ServerStatsResult): string {
  const lookups = s.hitBytes + s.missBytes
  const ratio = lookups === 0 ? 'no reads yet' : `${((100 * s.hitBytes) / lookups).toFixed(1)}% of bytes from RAM`
  return [
    `cache      ${size(s.cacheBytes)} of ${size(s.cacheLimit)} in ${count(s.entries)} blocks (policy ${s.policy})`,
    `hits       ${count(s.hits)} (${size(s.hitBytes)}), misses ${count(s.misses)} (${size(s.missBytes)}): ${ratio}`,
    `evictions  ${count(s.evictions)}, disk reads ${count(s.diskReads)}`,
    `served     ${size(s.bytesServed)}${s.locatedBytes ? ` (and ${size(s.locatedBytes)} in shared memory)` : ''}; ${s.connections} connections open, ${count(s.totalConnections)} since start; ${count(s.nacks)} NACKs`,
    ...(s.sharedUp === null || s.sharedUp === undefined
      ? []
      : [`shared     Redis ${s.sharedUp ? 'up' : 'left alone (retried every second)'}: ${count(s.sharedHits)} hits (${size(s.sharedReadBytes)}), ${count(s.sharedMisses)} misses, ${count(s.sharedErrors)} errors (${count(s.sharedCorrupt)} corrupt); stored ${size(s.sharedWrittenBytes)}, ${count(s.sharedSkipped)} blocks not stored`]),
    ...(s.shm ? [`memory     shared, ${count(s.shm.blocks)} blocks in ${size(s.shm.bytes)} of pages under ${s.shm.dir}`] : []),
    `uptime     ${duration(s.uptime)}`,
  ].join('\n')
}

export function formatWarm(w: WarmResult, seconds: number): string {
  const rate = seconds > 0 ? `, ${size(w.bytes / seconds)}/s` : ''
  const of = w.files === w.totalFiles ? '' : ` of ${count(w.totalFiles)} files, ${size(w.totalBytes)}`
  const full = w.full ? '; the cache is full, so it stopped at its limit' : ''
  const skipped = w.skipped
    ? `; skipped ${count(w.skipped)} listed paths (${(w.skippedPaths ?? []).map((p) => `${p.path}: ${p.code}`).join(', ')}${w.skipped > (w.skippedPaths ?? []).length ? ', ...' : ''})`
    : ''
  return `warmed ${count(w.files)} files, ${size(w.bytes)}${of} in ${duration(seconds)}${rate}${full}${skipped}`
}
