/**
 * A raw protocol peer: write request lines by hand, collect decoded frames.
 * For specs that need to see the wire itself (interleaving, bad input).
 */
import net from 'node:net'
import type { TestContext } from 'node:test'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { FrameType } from '../../lib/protocol/constants.js'

export interface RawPeer {
  socket: net.Socket
  frames: ReceivedFrame[]
  invalid: string | null
  closed: Promise<void>
  send(line: string | object): void
  /** Wait until `pred` holds for the frames so far (fails after `timeout` ms). */
  until(pred: (frames: ReceivedFrame[]) => boolean, timeout?: number): Promise<ReceivedFrame[]>
  /** The terminal frame (END, RESULT or ERROR) of request `id`. */
  done(id: number): Promise<ReceivedFrame>
}

export function json(frame: ReceivedFrame): any {
  return JSON.parse(frame.payload.toString())
}

const TERMINAL = new Set<number>([FrameType.END, FrameType.RESULT, FrameType.ERROR])

export async function rawPeer(t: Pick<TestContext, 'after'>, url: string): Promise<RawPeer> {
  const m = /^tcp:\/\/([^:]+):(\d+)$/.exec(url)!
  const socket = net.connect({ host: m[1], port: Number(m[2]) })
  t.after(() => void socket.destroy())
  const frames: ReceivedFrame[] = []
  const waiters = new Set<() => void>()
  const peer: RawPeer = {
    socket,
    frames,
    invalid: null,
    closed: new Promise<void>((resolve) => socket.once('close', () => resolve())),
    send(line) {
      socket.write((typeof line === 'string' ? line : JSON.stringify(line)) + '\n')
    },
    until(pred, timeout = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (pred(frames)) {
            waiters.delete(check)
            clearTimeout(timer)
            resolve(frames)
          }
        }
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`condition not met within ${timeout} ms; frames: ${frames.map((f) => `${f.type}/${f.id}/${f.seq}`).join(' ')}`))
        }, timeout)
        waiters.add(check)
        check()
      })
    },
    async done(id) {
      await peer.until((fs) => fs.some((f) => f.id === id && TERMINAL.has(f.type)))
      return frames.find((f) => f.id === id && TERMINAL.has(f.type))!
    },
  }
  const decoder = new FrameDecoder({
    onFrame: (f) => {
      frames.push(f)
      for (const w of [...waiters]) w()
    },
    onInvalid: (reason) => {
      peer.invalid = reason
    },
  })
  socket.on('data', (c: Buffer) => decoder.write(c))
  socket.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve())
    socket.once('error', reject)
  })
  await peer.until((fs) => fs.length > 0) // HELLO
  return peer
}
