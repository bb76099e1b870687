/**
 * Shared-secret authentication: the first request of a connection to a
 * server with a token must be {"op":"auth","token":...}. Compared in constant
 * time (digests first, so the lengths match too).
 */
import { createHash, timingSafeEqual } from 'node:crypto'

export function tokenMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string') return false
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest()
  return timingSafeEqual(digest(expected), digest(given))
}
