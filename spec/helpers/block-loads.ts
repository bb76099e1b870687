/** Counts a server's block loads under way at once, by wrapping its cache's own entry point. */
import type { CacheServer } from '../../lib/server/server.js'

export function countBlockLoads(server: CacheServer): { most(): number } {
  let running = 0
  let most = 0
  const block = server.cache.block.bind(server.cache)
  server.cache.block = async (...args: Parameters<typeof block>) => {
    most = Math.max(most, ++running)
    try {
      return await block(...args)
    } finally {
      running--
    }
  }
  return { most: () => most }
}
