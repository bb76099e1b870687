/**
 * A connection's deadlines: what keeps a slow or hostile client from holding
 * a connection slot. One timer per connection checks, a few times per
 * shortest deadline:
 *
 * - auth: a server with a token must see the right one within `authTimeout` of HELLO;
 * - first request: a complete request must arrive within `requestTimeout` of HELLO;
 * - request line: a line must arrive whole within `requestTimeout` of its first byte;
 *   an upload frame's bytes must keep coming (no pause of `requestTimeout`);
 * - idle: within `idleTimeout`, the client must send a complete request (or upload
 *   frame), or take some of the server's output. Blank lines, stray bytes, or a
 *   client that sends but never reads do not count. A client waiting for an
 *   answer the server is still working on, with nothing of it left to take, is
 *   not idle: a slow disk, or a file still settling, is not its fault.
 *
 * While the server itself holds the client's input back (backpressure: its
 * answers are waiting for the client, or an upload for the disk), the clocks
 * of a partial line or frame do not run.
 */
import type { Duplex } from 'node:stream'
import type { RequestParser } from '../stages/request-parser.js'

export interface Deadlines {
  /** Ms for a request line, from its first byte, and for the first request, from HELLO. 0: none. */
  requestTimeout: number
  /** Ms from HELLO to a successful auth; 0 or without `authenticated`: none. */
  authTimeout: number
  /** Ms without a complete request and without output taken. 0: none. */
  idleTimeout: number
}

export interface Watched {
  duplex: Duplex
  parser: RequestParser
  /** Bytes of output the peer has taken so far (handed to the duplex, minus those still buffered there). */
  taken: () => number
  /** Requests the server is working on (uploads, waiting on the client, do not count). */
  working?: () => boolean
  /** Whether the connection has authenticated; absent when the server needs no token. */
  authenticated?: () => boolean
  /** A deadline passed; `stuck`: the output cannot get out (the peer does not read). */
  expire: (code: 'ETIMEDOUT' | 'EAUTH', message: string, stuck: boolean) => void
}

const seconds = (ms: number) => `${ms / 1000} s`

/** Start watching; returns the function that stops it. */
export function watchdog(w: Watched, d: Deadlines): () => void {
  const auth = w.authenticated && d.authTimeout > 0 ? d.authTimeout : 0
  const limits = [d.requestTimeout, auth, d.idleTimeout].filter((ms) => ms > 0)
  if (limits.length === 0) return () => {}
  const started = Date.now()
  let lastActive = started
  let units = 0
  let taken = 0
  /** Last check at which the server held the input back. */
  let held = 0
  const check = () => {
    const now = Date.now()
    const p = w.parser.progress
    const { duplex, parser } = w
    if (duplex.readableFlowing === false || parser.writableLength > 0 || parser.readableLength >= parser.readableHighWaterMark) held = now
    const out = w.taken()
    if (p.units !== units || out !== taken || (w.working?.() && duplex.writableLength === 0)) lastActive = now
    units = p.units
    taken = out
    const fail = (code: 'ETIMEDOUT' | 'EAUTH', message: string, stuck = false) => {
      stop()
      w.expire(code, message, stuck)
    }
    if (auth && !w.authenticated!() && now - started >= auth) return fail('EAUTH', `no valid token within ${seconds(auth)} of HELLO`)
    const r = d.requestTimeout
    if (r > 0) {
      if (p.units === 0 && now - started >= r) return fail('ETIMEDOUT', `no request within ${seconds(r)} of HELLO`)
      if (p.pending === 'line' && now - Math.max(p.pendingSince, held) >= r) return fail('ETIMEDOUT', `a request line did not arrive whole within ${seconds(r)} of its first byte`)
      if (p.pending === 'frame' && now - Math.max(p.lastInput, held) >= r) return fail('ETIMEDOUT', `an upload frame stalled for ${seconds(r)}`)
    }
    if (d.idleTimeout > 0 && now - lastActive >= d.idleTimeout) {
      return fail('ETIMEDOUT', `no request and no answer taken for ${seconds(d.idleTimeout)}`, duplex.writableLength > 0)
    }
  }
  const timer = setInterval(check, Math.min(1000, Math.max(10, Math.min(...limits) / 5)))
  timer.unref()
  const stop = () => clearInterval(timer)
  return stop
}
