/**
 * A loopback TCP proxy that cuts the server → client byte stream into frames
 * (trusting the server's headers) and lets a test rewrite any frame before it
 * reaches the client: flip a payload bit, break a header, drop a frame.
 */
import net from 'node:net'
import type { TestContext } from 'node:test'
import { DIGEST_SIZE, HEADER_SIZE } from '../../lib/protocol/constants.js'

/** Return the bytes to forward (the same Buffer, a changed copy, or an empty Buffer to drop it). */
export type Mutator = (frame: Buffer, index: number) => Buffer

export async function tamperProxy(t: Pick<TestContext, 'after'>, target: string, mutate: Mutator): Promise<string> {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(target)
  if (!m) throw new Error(`tamperProxy needs a tcp:// target, got ${target}`)
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: m[1], port: Number(m[2]) })
    sockets.add(client).add(upstream)
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
    client.pipe(upstream)
    let pending = Buffer.alloc(0)
    let index = 0
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= HEADER_SIZE) {
        const size = HEADER_SIZE + DIGEST_SIZE[pending[16]] + pending.readUInt32BE(12)
        if (pending.length < size) break
        const frame = Buffer.from(pending.subarray(0, size))
        pending = pending.subarray(size)
        const out = mutate(frame, index++)
        if (out.length > 0) client.write(out)
      }
    })
    upstream.on('end', () => client.end())
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
