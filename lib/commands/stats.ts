/** stats: RESULT with the server's counters (cache, connections, NACKs, uptime). */
import type { Part } from '../stages/items.js'
import type { CommandContext } from './context.js'

export async function* stats(_args: Record<string, unknown>, ctx: CommandContext): AsyncGenerator<Part, void, void> {
  yield { kind: 'result', body: ctx.stats() }
}
