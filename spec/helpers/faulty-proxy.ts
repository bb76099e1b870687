/**
 * A loopback TCP proxy whose server → client direction runs through the
 * exported fault injector, so real sockets carry real damage.
 */
import type { TestContext } from 'node:test'
import { corrupt, type CorruptOptions, type CorruptStats } from '../../lib/stages/corrupt.js'
import { loopbackProxy } from './proxy.js'

export interface FaultyProxy {
  url: string
  /** Damage done so far, over all connections. */
  stats(): CorruptStats
}

export async function faultyProxy(t: Pick<TestContext, 'after'>, target: string, opts: CorruptOptions): Promise<FaultyProxy> {
  const all: CorruptStats[] = []
  const url = await loopbackProxy(t, target, (upstream, client) => {
    // Each connection gets its own seed, so two connections are not damaged alike.
    const damage = corrupt({ ...opts, seed: (opts.seed ?? 1) + all.length })
    all.push(damage.stats)
    damage.on('error', () => {
      client.destroy()
      upstream.destroy()
    })
    upstream.pipe(damage).pipe(client)
  })
  const sum = (key: keyof CorruptStats) => all.reduce((n, s) => n + s[key], 0)
  return {
    url,
    stats: () => ({ faults: sum('faults'), flipped: sum('flipped'), dropped: sum('dropped'), duplicated: sum('duplicated'), inserted: sum('inserted') }),
  }
}
