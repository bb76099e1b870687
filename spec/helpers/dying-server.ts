/**
 * A fake server on loopback, like scriptedServer, whose answer to a request
 * line may end the connection after its frames: what the request had not
 * received by then dies with the connection. Each new connection opens with
 * a HELLO; every request line is recorded.
 */
import type net from 'node:net'
import type { TestContext } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { type Frame, jsonFrame } from '../../lib/protocol/frame.js'
import { loopbackServer } from './loopback.js'
import { frameBytes, SCRIPTED_HELLO, type ScriptedRequest } from './scripted-server.js'

export interface Answer {
  frames: Frame[]
  /** End the connection once the frames are written. */
  hangUp?: boolean
}

/** `answer` gets each request line and how many lines of its op came so far, this one included. */
export async function dyingServer(
  t: Pick<TestContext, 'after'>,
  answer: (req: ScriptedRequest, nth: number) => Answer,
): Promise<{ url: string; lines: ScriptedRequest[]; connections: () => number }> {
  const lines: ScriptedRequest[] = []
  let connections = 0
  const url = await loopbackServer(t, (socket: net.Socket) => {
    connections++
    socket.on('error', () => {})
    socket.write(frameBytes(jsonFrame(FrameType.HELLO, 0, 0, SCRIPTED_HELLO)))
    let text = ''
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split('\n')
      text = parts.pop()!
      for (const line of parts) {
        const req = JSON.parse(line) as ScriptedRequest
        lines.push(req)
        const { frames, hangUp } = answer(req, lines.filter((l) => l.op === req.op).length)
        for (const f of frames) socket.write(frameBytes(f))
        if (hangUp) return void socket.end()
      }
    })
  })
  return { url, lines, connections: () => connections }
}

/** The lines of `op` among `lines`. */
export function linesOf(lines: ScriptedRequest[], op: string): ScriptedRequest[] {
  return lines.filter((l) => l.op === op)
}
