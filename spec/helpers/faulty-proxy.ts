/**
 * A loopback TCP proxy whose server → client direction runs through the
 * exported fault injector, so real sockets carry real damage.
 */
import net from 'node:net'
import type { TestContext } from 'node:test'
import { corrupt, type CorruptOptions, type CorruptStats } from '../../lib/stages/corrupt.js'

export interface FaultyProxy {
  url: string
  /** Damage done so far, over all connections. */
  stats(): CorruptStats
}

export async function faultyProxy(t: Pick<TestContext, 'after'>, target: string, opts: CorruptOptions): Promise<FaultyProxy> {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(target)
  if (!m) throw new Error(`faultyProxy needs a tcp:// target, got ${target}`)
  const sockets = new Set<net.Socket>()
  const all: CorruptStats[] = []
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: m[1], port: Number(m[2]) })
    sockets.add(client).add(upstream)
    const damage = corrupt({ ...opts, seed: (opts.seed ?? 1) + all.length })
    all.push(damage.stats)
    for (const s of [client, upstream, damage]) s.on('error', () => {
      client.destroy()
      upstream.destroy()
    })
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    upstream.pipe(damage).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  const { port } = server.address() as net.AddressInfo
  return {
    url: `tcp://127.0.0.1:${port}`,
    stats: () => all.reduce((a, s) => ({ faults: a.faults + s.faults, flipped: a.flipped + s.flipped, dropped: a.dropped + s.dropped, duplicated: a.duplicated + s.duplicated, inserted: a.inserted + s.inserted }), { faults: 0, flipped: 0, dropped: 0, duplicated: 0, inserted: 0 }),
  }
}
