/** A hand-made TCP server on a loopback port, for fakes and proxies; gone when the test ends. */
import { once } from 'node:events'
import net from 'node:net'
import type { TestContext } from 'node:test'

/**
 * Listen on 127.0.0.1, port 0, and hand each connection to `onConnection`,
 * with `track` for any other socket it opens (an upstream). At the end of the
 * test every such socket is destroyed and the listener closed. Returns the
 * tcp:// address.
 */
export async function loopbackServer(
  t: Pick<TestContext, 'after'>,
  onConnection: (socket: net.Socket, track: (other: net.Socket) => void) => void,
): Promise<string> {
  const sockets = new Set<net.Socket>()
  const track = (s: net.Socket): void => void sockets.add(s)
  const server = net.createServer((socket) => {
    track(socket)
    onConnection(socket, track)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  )
  return `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`
}

/**
 * A loopback listener; each call of the function given back connects a
 * client and resolves with it and the server's side. Both keep an error
 * listener; with `drain`, both also read and drop their input.
 */
export async function socketPairs(t: Pick<TestContext, 'after'>, { drain = false } = {}): Promise<() => Promise<{ client: net.Socket; side: net.Socket }>> {
  const waiting: ((s: net.Socket) => void)[] = []
  const url = await loopbackServer(t, (socket) => {
    socket.on('error', () => {})
    if (drain) socket.resume()
    waiting.shift()!(socket)
  })
  const port = Number(new URL(url).port)
  return async () => {
    const side = new Promise<net.Socket>((resolve) => waiting.push(resolve))
    const client = net.connect({ host: '127.0.0.1', port })
    client.on('error', () => {})
    if (drain) client.resume()
    t.after(() => void client.destroy())
    await once(client, 'connect')
    return { client, side: await side }
  }
}
