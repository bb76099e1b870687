/** The command table: one command, one file. */
import type { CommandSpec } from './context.js'
import { evict } from './evict.js'
import { ls } from './ls.js'
import { read } from './read.js'
import { stat } from './stat.js'
import { stats } from './stats.js'
import { warm } from './warm.js'
import { write } from './write.js'

export const commands = new Map<string, CommandSpec>([
  ['read', { run: read }],
  ['ls', { run: ls }],
  ['stat', { run: stat }],
  ['stats', { run: stats }],
  ['warm', { run: warm }],
  ['evict', { run: evict }],
  ['write', { run: write, input: true }],
])
