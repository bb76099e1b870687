import type { BlockCache } from '../cache/block-cache.js'
import type { Jail } from '../fs/jail.js'
import type { Part } from '../stages/items.js'

/** What every command may use: the root, the cache. Shared by all connections. */
export interface CommandContext {
  jail: Jail
  cache: BlockCache
}

/** Where a resend (after a NACK) picks up. */
export interface Resume {
  /** First frame to send again; 0 means from the very start. */
  seq: number
  /** DATA bytes the receiver already holds. */
  offset: number
  /** Version of the file the first attempt served (from its START part), if it got that far. */
  identity?: string
}

/**
 * A command turns its arguments into the parts of its response. It is pulled:
 * the next part is produced only when the connection can send it, and
 * returning the generator early (cancel, hang-up) runs its cleanup. With
 * `resume` it sends only what a receiver that NACKed still needs.
 */
export type Command = (args: Record<string, unknown>, ctx: CommandContext, resume?: Resume) => AsyncGenerator<Part, void, void>
