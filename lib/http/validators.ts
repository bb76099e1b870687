/**
 * Validators of a file version (RFC 9110 §8.8, §13): a strong ETag made
 * from the identity that keys the cache (device, inode, size, mtime and
 * ctime in ns), so it changes whenever the content may have, and
 * Last-Modified; and the conditional headers judged against them.
 */
import { createHash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

export interface Version {
  key: string
  mtimeMs: number
}

/** A strong entity tag: a digest of the identity, which would show inode numbers if sent as is. */
export function etagOf(key: string): string {
  return `"${createHash('sha256').update(key).digest('base64url').slice(0, 27)}"`
}

/** Last-Modified has one-second resolution. */
export function lastModified(mtimeMs: number): string {
  return new Date(seconds(mtimeMs)).toUTCString()
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000
}

/** If-None-Match (weak comparison) or, without it, If-Modified-Since: true for a 304. */
export function notModified(headers: IncomingHttpHeaders, etag: string, mtimeMs: number): boolean {
  const inm = headers['if-none-match']
  if (inm !== undefined) {
    if (inm.trim() === '*') return true
    const opaque = (tag: string) => tag.trim().replace(/^W\//, '')
    return inm.split(',').some((tag) => opaque(tag) === etag)
  }
  const ims = headers['if-modified-since']
  if (ims === undefined) return false
  const since = Date.parse(ims)
  return !Number.isNaN(since) && seconds(mtimeMs) <= since
}

/**
 * If-Range: the Range header counts only while the client's copy is this
 * version. An entity tag must match strongly; a date must equal
 * Last-Modified exactly.
 */
export function rangeStillApplies(headers: IncomingHttpHeaders, etag: string, mtimeMs: number): boolean {
  const raw = headers['if-range']
  if (raw === undefined) return true
  const ifRange = String(raw).trim()
  if (ifRange.startsWith('"') || ifRange.startsWith('W/')) return ifRange === etag
  const date = Date.parse(ifRange)
  return !Number.isNaN(date) && date === seconds(mtimeMs)
}
