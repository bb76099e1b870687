/** The command table: one command, one file. */
import { auth } from './auth.js'
import { cancel } from './cancel.js'
import type { TableEntry } from './context.js'
import { evict } from './evict.js'
import { locate, releaseGrant } from './locate.js'
import { ls } from './ls.js'
import { nack } from './nack.js'
import { pin, unpin } from './pin.js'
import { read } from './read.js'
import { readv } from './readv.js'
import { stat } from './stat.js'
import { stats } from './stats.js'
import { tree } from './tree.js'
import { warm } from './warm.js'
import { write } from './write.js'

export const commands = new Map<string, TableEntry>([
  // read and readv stream their pages; warm reports its own progress; the others answer with one RESULT.
  // write sends no heartbeat: a damaged one would be NACKed, and an upload cannot be resent (the
  // client does not take the server's silence for a loss while it sends; see Client.#upload).
  ['read', { run: read }],
  ['readv', { run: readv }],
  ['ls', { run: ls, heartbeat: true }],
  ['stat', { run: stat, heartbeat: true }],
  ['stats', { run: stats, heartbeat: true }],
  ['tree', { run: tree, heartbeat: true }],
  ['warm', { run: warm }],
  ['evict', { run: evict, heartbeat: true }],
  ['write', { run: write, input: true }],
  ['pin', { run: pin, heartbeat: true }],
  ['unpin', { run: unpin, heartbeat: true }],
  ['locate', { run: locate, heartbeat: true }],
  ['release', { run: releaseGrant }],
  // About the connection's other requests: answered at once, no job of their own.
  ['auth', auth],
  ['cancel', cancel],
  ['nack', nack],
])
