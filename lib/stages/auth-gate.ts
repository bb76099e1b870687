/**
 * Between the request parser and the source on a server with a token: holds
 * the first request, if it is `auth`, until its verdict may be answered (see
 * lib/server/auth-throttle.ts). The source still checks the token and
 * answers; the gate only decides when it gets to.
 */
import createDebug from '../debug.js'
import { Transform } from 'readable-stream'
import { tokenMatches } from '../protocol/auth.js'
import type { Inbound } from './request-parser.js'

const debug = createDebug('cacheserv:auth-gate')

export interface AuthGateOptions {
  token: string
  /** Ms to hold an auth judged `ok` before handing it on; null: hold it for good (a deadline ends the connection). */
  schedule: (ok: boolean) => number | null
}

export class AuthGate extends Transform {
  #opts: AuthGateOptions
  #first = true
  #authenticated = false
  #timer: NodeJS.Timeout | null = null

  constructor(opts: AuthGateOptions) {
    super({ objectMode: true, highWaterMark: 4 })
    this.#opts = opts
  }

  /** The right token has been handed on: the source has accepted it, or will. */
  get authenticated(): boolean {
    return this.#authenticated
  }

  override _transform(req: Inbound, _enc: BufferEncoding, cb: (err?: Error | null, req?: Inbound) => void): void {
    if (!this.#first) return cb(null, req)
    this.#first = false
    // Anything but auth first: the source refuses it at once; there was no guess to throttle.
    if ('frame' in req || 'error' in req || req.op !== 'auth') return cb(null, req)
    const ok = tokenMatches(this.#opts.token, req.args.token)
    const wait = this.#opts.schedule(ok)
    debug('auth %s, answered in %s ms', ok ? 'right' : 'wrong', wait ?? 'never')
    if (wait === null) return // cb never called: no more input is read; the auth deadline ends the connection
    const pass = () => {
      this.#timer = null
      if (ok) this.#authenticated = true
      cb(null, req)
    }
    if (wait <= 0) return pass()
    this.#timer = setTimeout(pass, wait)
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = null
    cb(err)
  }
}
