import type { BlockCache } from '../cache/block-cache.js'
import type { Jail } from '../fs/jail.js'
import type { Part } from '../stages/items.js'

/** What every command may use: the root, the cache. Shared by all connections. */
export interface CommandContext {
  jail: Jail
  cache: BlockCache
}

/**
 * A command turns its arguments into the parts of its response. It is pulled:
 * the next part is produced only when the connection can send it, and
 * returning the generator early (cancel, hang-up) runs its cleanup.
 */
export type Command = (args: Record<string, unknown>, ctx: CommandContext) => AsyncGenerator<Part, void, void>
