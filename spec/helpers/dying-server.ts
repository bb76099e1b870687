/**
 * A fake server on loopback, like scriptedServer, whose answer to a request
 * line may end the connection after its frames: what the request had not
 * received by then dies with the connection. Each new connection opens with
 * a HELLO; every request line is recorded.
 */
import type { TestContext } from 'node:test'
import type { Frame } from '../../lib/protocol/frame.js'
import { frameBytes, lineServer, type ScriptedRequest } from './scripted-server.js'

export interface Answer {
  frames: Frame[]
  /** End the connection once the frames are written. */
  hangUp?: boolean
}

/** `answer` gets each request line and how many lines of its op came so far, this one included. */
export function dyingServer(
  t: Pick<TestContext, 'after'>,
  answer: (req: ScriptedRequest, nth: number) => Answer,
): Promise<{ url: string; lines: ScriptedRequest[]; connections: () => number }> {
  return lineServer(t, (req, socket, lines) => {
    const { frames, hangUp } = answer(req, linesOf(lines, req.op).length)
    for (const f of frames) socket.write(frameBytes(f))
    if (hangUp) socket.end()
  })
}

/** The lines of `op` among `lines`. */
export function linesOf(lines: ScriptedRequest[], op: string): ScriptedRequest[] {
  return lines.filter((l) => l.op === op)
}
