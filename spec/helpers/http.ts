/** A server with its HTTP gateway on loopback ports, curl run against it, and raw clients that stop reading. */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import type { ServerOptions } from '../../lib/server/server.js'
import { run, type RunResult } from './cli.js'
import { type Running, startServer } from './server.js'
import { poll } from './wait.js'

export interface Gateway extends Running {
  /** http://127.0.0.1:PORT, no trailing slash. */
  base: string
}

export async function startGateway(t: Pick<TestContext, 'after'>, opts: Partial<ServerOptions> = {}): Promise<Gateway> {
  const running = await startServer(t, opts)
  const base = await running.server.listenHttp('127.0.0.1:0')
  return { ...running, base }
}

/** curl, silent but showing errors; never follows redirects unless asked (-L). */
export function curl(args: string[]): Promise<RunResult> {
  return run('curl', ['-sS', ...args], { timeout: 30_000 })
}

/** Status line and headers of a `curl -i`/`-I` output, names lower-cased; the last response when redirects were followed. */
export function parseHead(out: Buffer): { status: number; headers: Record<string, string>; body: Buffer } {
  let text = out
  for (;;) {
    const end = text.indexOf('\r\n\r\n')
    if (end < 0) throw new Error(`no response head in ${JSON.stringify(out.subarray(0, 200).toString())}`)
    const [statusLine, ...lines] = text.subarray(0, end).toString('latin1').split('\r\n')
    const rest = text.subarray(end + 4)
    // Another response follows (a redirect curl followed): take that one.
    if (rest.subarray(0, 5).toString() === 'HTTP/' && /^HTTP\/\S+ 3\d\d/.test(statusLine)) {
      text = rest
      continue
    }
    const headers: Record<string, string> = {}
    for (const l of lines) {
      const i = l.indexOf(':')
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim()
    }
    return { status: Number(statusLine.split(' ')[1]), headers, body: rest }
  }
}

/** A raw client that sends one GET and reads nothing until told. */
export async function getWithoutReading(g: Gateway, path: string, t: { after: (fn: () => void) => void }): Promise<{ socket: Socket; received: () => Buffer; ended: Promise<unknown> }> {
  const socket = connect(Number(new URL(g.base).port), '127.0.0.1')
  t.after(() => socket.destroy())
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.on('error', () => {})
  socket.pause()
  const ended = new Promise((resolve) => socket.once('close', resolve))
  socket.write(`GET /${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
  return { socket, received: () => Buffer.concat(chunks), ended }
}

/** Until the server has stopped sending to a client that does not read (its sent count stays put). */
export async function stuck(g: Gateway): Promise<void> {
  let last = -1
  let same = 0
  assert.ok(
    await poll(() => {
      const now = g.server.stats().httpBytesServed
      same = now === last ? same + 1 : 0
      last = now
      return same >= 20
    }, 20_000),
    'the server stopped sending',
  )
}
