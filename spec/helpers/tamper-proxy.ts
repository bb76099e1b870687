/**
 * A loopback TCP proxy that cuts the server → client byte stream into frames
 * (trusting the server's headers) and lets a test rewrite any frame before it
 * reaches the client: flip a payload bit, break a header, drop a frame.
 */
import type { TestContext } from 'node:test'
import { DIGEST_SIZE, HEADER_SIZE } from '../../lib/protocol/constants.js'
import { loopbackProxy } from './proxy.js'

/** Return the bytes to forward (the same Buffer, a changed copy, or an empty Buffer to drop it). */
export type Mutator = (frame: Buffer, index: number) => Buffer

export function tamperProxy(t: Pick<TestContext, 'after'>, target: string, mutate: Mutator): Promise<string> {
  return loopbackProxy(t, target, (upstream, client) => {
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
}
