/**
 * A request target as a client path under the root. Segments are
 * percent-decoded one by one as UTF-8 (an encoded '/' is refused, so a
 * segment can never become two), and nothing is normalised here: the jail
 * refuses '..', NUL and backslashes however they were spelt.
 */
import { error } from '../errors.js'

export interface Target {
  /** The client path ('' for the root; a trailing '/' kept). */
  path: string
  /** The URL path as sent (still encoded), for redirects. */
  raw: string
  /** Under the gateway's own namespace `/-/`: its name there. */
  special?: string
}

export function parseTarget(url: string): Target {
  let raw = url
  // Absolute form (proxies): only the path counts.
  const abs = /^https?:\/\/[^/?#]*/i.exec(raw)
  if (abs) raw = raw.slice(abs[0].length) || '/'
  const q = raw.search(/[?#]/)
  if (q >= 0) raw = raw.slice(0, q)
  if (!raw.startsWith('/')) throw error('EBADREQ', `request target ${JSON.stringify(url.slice(0, 100))} is not a path`)
  const segments = raw.slice(1).split('/').map((s) => {
    let d: string
    try {
      d = decodeURIComponent(s)
    } catch {
      throw error('EBADREQ', `bad percent-encoding in ${JSON.stringify(s.slice(0, 100))}: names are UTF-8, percent-encoded`)
    }
    if (d.includes('/')) throw error('EBADREQ', 'an encoded / is not allowed in a name')
    return d
  })
  // The file or directory named '-' at the root is shadowed by this namespace.
  if (segments[0] === '-') return { path: '', raw, special: segments.slice(1).join('/') }
  return { path: segments.join('/'), raw }
}
