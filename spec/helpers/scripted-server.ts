/**
 * A fake server on loopback that opens with a HELLO and answers each request
 * line with what `answer` gives for it (frames, or raw bytes), recording
 * every line the client sends.
 */
import type net from 'node:net'
import type { TestContext } from 'node:test'
import { ChecksumId, FrameType } from '../../lib/protocol/constants.js'
import { encodeFrame, type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { loopbackServer } from './loopback.js'

export interface ScriptedRequest {
  id: number
  op: string
  resync?: number
  [k: string]: unknown
}

/** The HELLO a scripted server opens with: CRC-32 pages of 1 KiB, unless told otherwise. */
export const SCRIPTED_HELLO = { protocol: 1, server: 'fake/0', checksum: 'crc32', pageSize: 1024 }

export function frameBytes(f: Frame): Buffer {
  return Buffer.concat(encodeFrame(f, ChecksumId.crc32))
}

export async function scriptedServer(
  t: Pick<TestContext, 'after'>,
  answer: (req: ScriptedRequest) => (Frame | Buffer)[],
  hello: Record<string, unknown> = SCRIPTED_HELLO,
): Promise<{ url: string; lines: ScriptedRequest[] }> {
  const lines: ScriptedRequest[] = []
  const url = await loopbackServer(t, (socket: net.Socket) => {
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello)))
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split('\n')
      text = parts.pop()!
      for (const line of parts) {
        const req = JSON.parse(line) as ScriptedRequest
        lines.push(req)
        for (const f of answer(req)) socket.write(Buffer.isBuffer(f) ? f : frameBytes(f))
      }
    })
  })
  return { url, lines }
}
