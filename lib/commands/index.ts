/** The command table: one command, one file. */
import type { Command } from './context.js'
import { ls } from './ls.js'
import { read } from './read.js'
import { stat } from './stat.js'

export const commands = new Map<string, Command>([
  ['ls', ls],
  ['read', read],
  ['stat', stat],
])

/** Ops that steer requests in flight instead of starting one; handled by the source stage. */
export const CONTROL_OPS = new Set(['cancel'])
