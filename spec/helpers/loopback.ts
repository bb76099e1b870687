/** A hand-made TCP server on a loopback port, for fakes and proxies; gone when the test ends. */
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
