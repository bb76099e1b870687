/** Argument checks shared by commands: each failure is EBADREQ naming the argument. */
import { error } from '../errors.js'

export function optionalString(args: Record<string, unknown>, name: string, fallback: string): string {
  const v = args[name]
  if (v === undefined || v === null) return fallback
  if (typeof v !== 'string') throw error('EBADREQ', `"${name}" must be a string`)
  return v
}

export function requiredString(args: Record<string, unknown>, name: string): string {
  if (args[name] === undefined) throw error('EBADREQ', `missing "${name}" argument`)
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
