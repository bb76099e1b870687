/**
 * Requests are newline-delimited JSON objects: {"id": 1, "op": "read", ...}.
 * This module validates the envelope; each command validates its own
 * arguments (lib/commands).
 */
import { type CacheservError, error } from '../errors.js'
import { MAX_ID } from './constants.js'

export interface Request {
  id: number
  op: string
  args: Record<string, unknown>
}

/** What the request parser hands on: a request, or an error to answer with. */
export type ParsedRequest = Request | { id: number; error: CacheservError; fatal?: boolean }

export function isValidId(id: unknown): id is number {
  return Number.isInteger(id) && (id as number) >= 1 && (id as number) <= MAX_ID
}

/** Parse one request line; errors come back as values, never thrown. */
export function parseRequestLine(line: string): ParsedRequest {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (err) {
    return { id: 0, error: error('EBADREQ', `request is not valid JSON: ${(err as Error).message}`) }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { id: 0, error: error('EBADREQ', 'request must be a JSON object') }
  }
  const { id, op, ...args } = value as Record<string, unknown>
  if (!isValidId(id)) {
    return { id: 0, error: error('EBADREQ', `request id must be an integer from 1 to ${MAX_ID}, got ${describe(id)}`) }
  }
  if (typeof op !== 'string' || op === '') {
    return { id, error: error('EBADREQ', 'request needs an "op" string naming the command') }
  }
  return { id, op, args }
}

/** A short, safe description of any JSON value (never stringify what a client sent: it may nest 30,000 deep). */
export function describe(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) return String(value)
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** Serialise a request as one line of the wire format. */
export function encodeRequest(id: number, op: string, args: Record<string, unknown> = {}): Buffer {
  // id and op last, so that arguments can never replace them.
  return Buffer.from(JSON.stringify({ ...args, id, op }) + '\n')
}
