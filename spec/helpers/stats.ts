/** The numeric fields of the `stats` command (PROTOCOL.md), for specs that check them all. */
export const STATS_NUMBERS = [
  'hits',
  'misses',
  'hitBytes',
  'missBytes',
  'evictions',
  'diskReads',
  'cacheBytes',
  'cacheLimit',
  'entries',
  'connections',
  'totalConnections',
  'bytesServed',
  'nacks',
  'uptime',
] as const
