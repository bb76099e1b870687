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

/**
 * A loopback server that opens each connection with `hello` and hands each
 * request line, parsed and recorded, to `onRequest` with its socket; lines
 * after the socket was ended are not read.
 */
export async function lineServer(
  t: Pick<TestContext, 'after'>,
  onRequest: (req: ScriptedRequest, socket: net.Socket, lines: ScriptedRequest[]) => void,
  hello: Record<string, unknown> = SCRIPTED_HELLO,
): Promise<{ url: string; lines: ScriptedRequest[]; connections: () => number }> {
  const lines: ScriptedRequest[] = []
  let connections = 0
  const url = await loopbackServer(t, (socket: net.Socket) => {
    connections++
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, hello)))
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split('\n')
      text = parts.pop()!
      for (const line of parts) {
        if (socket.writableEnded) return
        const req = JSON.parse(line) as ScriptedRequest
        lines.push(req)
        onRequest(req, socket, lines)
      }
    })
  })
  return { url, lines, connections: () => connections }
}

export async function scriptedServer(
  t: Pick<TestContext, 'after'>,
  answer: (req: ScriptedRequest) => (Frame | Buffer)[],
  hello: Record<string, unknown> = SCRIPTED_HELLO,
): Promise<{ url: string; lines: ScriptedRequest[] }> {
  const { url, lines } = await lineServer(
    t,
    (req, socket) => {
      for (const f of answer(req)) socket.write(Buffer.isBuffer(f) ? f : frameBytes(f))
    },
    hello,
  )
  return { url, lines }
}
