/** Argument checks shared by commands: each failure is EBADREQ naming the argument. */
import { error } from '../errors.js'

export function optionalString(args: Record<string, unknown>, name: string, fallback: string): string {
  const v = args[name]
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'string') throw error('EBADREQ', `"${name}" must be a string`)
  return v
}

export function requiredString(args: Record<string, unknown>, name: string): string {
  // null is no path either: taken as '' it named the root (a pin of null pinned the whole tree).
  if (args[name] === undefined || args[name] === null) throw error('EBADREQ', `missing "${name}" argument`)
  return optionalString(args, name, '')
}

export function optionalCount(args: Record<string, unknown>, name: string): number | undefined {
  const v = args[name]
  if (v === undefined || v === null) return undefined
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw error('EBADREQ', `"${name}" must be a non-negative integer`)
  return v as number
}

export function optionalFlag(args: Record<string, unknown>, name: string): boolean {
  const v = args[name]
  if (v === undefined || v === null) return false
  if (typeof v !== 'boolean') throw error('EBADREQ', `"${name}" must be true or false`)
  return v
}

/** What one item of a `paths` list asks for: a whole file, or the range `offset`..`offset + length` of one (clipped to its end). */
export interface Wanted {
  path: string
  offset?: number
  length?: number
}

/** `args.paths`: 1 to `max` items, each a path string or a `{path, offset, length}` range. */
export function pathItems(args: Record<string, unknown>, max: number): Wanted[] {
  const paths = args.paths
  if (!Array.isArray(paths) || paths.length === 0 || paths.length > max) throw error('EBADREQ', `"paths" must be a list of 1 to ${max} paths`)
  return paths.map((item: unknown): Wanted => {
    if (typeof item === 'string') return { path: item }
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw error('EBADREQ', '"paths" items must be strings or {path, offset, length} objects')
    const range = item as Record<string, unknown>
    if (typeof range.path !== 'string') throw error('EBADREQ', 'a "paths" item needs a "path" string')
    return { path: range.path, offset: optionalCount(range, 'offset'), length: optionalCount(range, 'length') }
  })
}
