/**
 * A loopback TCP proxy in front of a server, closed when the test ends. The
 * client → server direction is piped as is; `forward` decides what reaches
 * the client from the server.
 */
import net from 'node:net'
import type { TestContext } from 'node:test'
import { loopbackServer } from './loopback.js'

export type Forward = (upstream: net.Socket, client: net.Socket) => void

export async function loopbackProxy(t: Pick<TestContext, 'after'>, target: string, forward: Forward): Promise<string> {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(target)
  if (!m) throw new Error(`a proxy needs a tcp:// target, got ${target}`)
  return loopbackServer(t, (client, track) => {
    const upstream = net.connect({ host: m[1], port: Number(m[2]) })
    track(upstream)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    forward(upstream, client)
  })
}
