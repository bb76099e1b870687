/**
 * Debug logging through the `debug` package, loaded only when $DEBUG is set.
 * Importing it costs ~20 ms of start-up (it pulls in tty and supports-color),
 * which the client CLI's time-to-first-byte budget cannot spare; without
 * $DEBUG every logger is a no-op whose `enabled` is false.
 */
import { createRequire } from 'node:module'

export interface Debugger {
  (format: unknown, ...args: unknown[]): void
  readonly enabled: boolean
}

const factory = process.env.DEBUG ? (createRequire(import.meta.url)('debug') as (namespace: string) => Debugger) : null

const off: Debugger = Object.assign(() => {}, { enabled: false })

export default function createDebug(namespace: string): Debugger {
  return factory ? factory(namespace) : off
}
