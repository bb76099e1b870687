import type { ReceivedFrame } from '../../lib/protocol/frame.js'

/** A received frame as one payload, without the pieces it arrived in: what equality checks compare. */
export function whole<T extends object>(f: T): T {
  if (!('views' in f)) return f
  const { views: _views, ...rest } = f as T & ReceivedFrame
  return rest as unknown as T
}
