/**
 * A loopback TCP proxy in front of a server, closed when the test ends. The
 * client → server direction is piped as is; `forward` decides what reaches
 * the client from the server.
 */
import net from 'node:net'
import type { TestContext } from 'node:test'

export type Forward = (upstream: net.Socket, client: net.Socket) => void

export async function loopbackProxy(t: Pick<TestContext, 'after'>, target: string, forward: Forward): Promise<string> {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(target)
  if (!m) throw new Error(`a proxy needs a tcp:// target, got ${target}`)
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: m[1], port: Number(m[2]) })
    sockets.add(client).add(upstream)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    forward(upstream, client)
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
  return `tcp://127.0.0.1:${port}`
}
