/**
 * The HTTP gateway: files under the root by GET and HEAD, through the same
 * cache, jail, settle rule and limits as the socket protocol. Bodies come
 * from the `read` command itself, pinned to the version whose ETag the
 * headers carry, so a response is one version or is cut off.
 *
 *   /<path>        a file (ranges, validators) or a directory page
 *   /-/healthy     200 while serving (no token needed)
 *   /-/stats       the `stats` JSON
 *   /-/metrics     Prometheus text
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import createDebug from '../debug.js'
import type { CommandContext } from '../commands/context.js'
import { ls, type Entry } from '../commands/ls.js'
import { read } from '../commands/read.js'
import { type CacheservError, error, toCacheservError } from '../errors.js'
import type { KnownFile } from '../fs/known-files.js'
import { openFile } from '../fs/open-file.js'
import { tokenMatches } from '../protocol/auth.js'
import { HttpConnection } from './http-connection.js'
import { htmlIndex, jsonIndex, wantsJson } from './index-page.js'
import { chooseRange, type RangeChoice } from './range.js'
import { sendBody } from './send-body.js'
import { ERROR_HEADER, isTransient, statusOf } from './status.js'
import { parseTarget, type Target } from './target.js'
import { etagOf, lastModified, notModified, rangeStillApplies } from './validators.js'

const debug = createDebug('cacheserv:http')

/** Ms an idle keep-alive connection is kept open. */
const KEEP_ALIVE_MS = 5000
/** Times a response starts over when the file changed between its headers' version and the read. */
const VERSION_TRIES = 3

/** What the gateway needs from the server it belongs to. */
export interface GatewayHost {
  ctx: CommandContext
  token?: string
  /** Ms before a wrong token from `peer` is answered (the server's AuthThrottle). */
  authDelay(peer: string): number
  /** Count the connection against the server's limit; false: over it (every request gets EBUSY). */
  admit(conn: HttpConnection): boolean
  /** Bytes of file data sent. */
  onData(bytes: number): void
  /** A request was answered with `status`, after `seconds`. */
  onResponse?(method: string, status: number, seconds: number): void
  stats(): unknown
  metrics(): Promise<{ contentType: string; body: string }>
  /** Ms a response may wait on a client that takes nothing before its connection is closed (0: never). */
  idleTimeout: number
  /** Ms within which request headers must arrive (0: no limit). */
  requestTimeout: number
  /** Largest request head in bytes. */
  maxRequest: number
}

export function createGateway(host: GatewayHost): http.Server {
  const server = http.createServer({
    maxHeaderSize: host.maxRequest,
    requestTimeout: host.requestTimeout,
    headersTimeout: host.requestTimeout,
    keepAliveTimeout: KEEP_ALIVE_MS,
    noDelay: true,
  })
  const conns = new WeakMap<Socket, { conn: HttpConnection; admitted: boolean }>()
  server.on('connection', (socket: Socket) => {
    const conn = new HttpConnection(socket)
    conns.set(socket, { conn, admitted: host.admit(conn) })
    socket.on('error', (err) => debug('socket error %s', err.message))
  })
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const entry = conns.get(req.socket)!
    void respond(host, req, res, entry.conn, entry.admitted)
  })
  return server
}

async function respond(host: GatewayHost, req: IncomingMessage, res: ServerResponse, conn: HttpConnection, admitted: boolean): Promise<void> {
  const started = process.hrtime.bigint()
  conn.active++
  const abort = new AbortController()
  res.once('close', () => abort.abort(error('ECLOSED', 'the client closed the connection')))
  try {
    if (!admitted) return sendError(req, res, error('EBUSY', 'the server serves as many connections as it allows; try again later'), { connection: 'close' })
    if (conn.draining) return sendError(req, res, error('ESHUTDOWN', 'the server is shutting down'), { connection: 'close' })
    await route(host, req, res, conn, abort.signal)
  } catch (err) {
    const e = toCacheservError(err)
    if (!res.headersSent) sendError(req, res, e)
    else {
      // Part of a body is out: cut the connection so the client cannot take it for the whole.
      debug('%s %s failed mid-body: %s', req.method, req.url, e.message)
      const socket = req.socket
      if (!socket.destroyed) socket.resetAndDestroy()
    }
  } finally {
    conn.active--
    host.onResponse?.(req.method ?? '', res.statusCode, Number(process.hrtime.bigint() - started) / 1e9)
    if (conn.draining && conn.active === 0) res.once('finish', () => conn.socket.end())
  }
}

async function route(host: GatewayHost, req: IncomingMessage, res: ServerResponse, conn: HttpConnection, signal: AbortSignal): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendError(req, res, error('EBADREQ', `method ${req.method} is not served: the gateway is read-only (GET, HEAD)`), { allow: 'GET, HEAD' }, 405)
  }
  const target = parseTarget(req.url ?? '/')
  if (target.special === 'healthy') return sendText(req, res, 200, 'text/plain; charset=utf-8', 'ok\n')
  if (!(await authorized(host, req, signal))) {
    return sendError(req, res, error('EAUTH', 'this server needs a token: send Authorization: Bearer TOKEN'), { 'www-authenticate': 'Bearer realm="cacheserv"' })
  }
  if (target.special === 'stats') return sendText(req, res, 200, 'application/json', JSON.stringify(host.stats()) + '\n')
  if (target.special === 'metrics') {
    const m = await host.metrics()
    return sendText(req, res, 200, m.contentType, m.body)
  }
  if (target.special !== undefined) throw error('ENOENT', `/-/${target.special}: the gateway serves /-/healthy, /-/stats and /-/metrics`)
  return serveFile(host, req, res, conn, target, signal)
}

async function authorized(host: GatewayHost, req: IncomingMessage, signal: AbortSignal): Promise<boolean> {
  if (host.token === undefined) return true
  const given = req.headers.authorization
  if (given === undefined) return false
  const m = /^Bearer +(\S+) *$/i.exec(given)
  if (m && tokenMatches(host.token, m[1])) return true
  // A guess: answered late, as on the socket.
  const delay = host.authDelay(req.socket.remoteAddress ?? 'local')
  if (delay > 0) await sleep(delay, undefined, { signal })
  return false
}

/** The file's current version (settled), without reading it. */
async function versionOf(ctx: CommandContext, path: string): Promise<KnownFile> {
  const known = ctx.files.current(path)
  if (known) return known
  const file = await openFile(ctx.jail, path, ctx.settle)
  await file.fh.close()
  return { key: file.key, size: file.size, mtimeMs: file.mtimeMs }
}

async function serveFile(host: GatewayHost, req: IncomingMessage, res: ServerResponse, conn: HttpConnection, target: Target, signal: AbortSignal): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    let v: KnownFile
    try {
      v = await versionOf(host.ctx, target.path)
    } catch (err) {
      if ((err as CacheservError).code === 'EISDIR') return serveDirectory(host, req, res, target)
      throw err
    }
    const etag = etagOf(v.key)
    const headers: http.OutgoingHttpHeaders = { etag, 'last-modified': lastModified(v.mtimeMs), 'accept-ranges': 'bytes' }
    if (notModified(req.headers, etag, v.mtimeMs)) {
      res.writeHead(304, headers)
      return void res.end()
    }
    const choice: RangeChoice = rangeStillApplies(req.headers, etag, v.mtimeMs) ? chooseRange(req.headers.range, v.size) : { kind: 'whole' }
    if (choice.kind === 'unsatisfiable') {
      return sendError(req, res, error('ERANGE', `the range lies beyond the end of the file (${v.size} bytes)`), { ...headers, 'content-range': `bytes */${v.size}` })
    }
    const [start, end] = choice.kind === 'part' ? [choice.start, choice.end] : [0, v.size]
    if (choice.kind === 'part') headers['content-range'] = `bytes ${start}-${end - 1}/${v.size}`
    headers['content-type'] = 'application/octet-stream'
    headers['content-length'] = end - start
    const status = choice.kind === 'part' ? 206 : 200
    if (req.method === 'HEAD') {
      res.writeHead(status, headers)
      return void res.end()
    }
    // The read insists on the version the headers describe, as a resend does (ECHANGED otherwise).
    const parts = read({ path: target.path, offset: start, length: end - start }, host.ctx, {
      resume: { seq: 0, offset: 0, identity: v.key },
      signal,
      backedUp: () => res.writableNeedDrain,
      hold: (lease) => conn.leases.hold(lease),
    })
    try {
      let first
      try {
        first = await parts.next()
      } catch (err) {
        // Changed since its version was taken, before any byte went out: start over with the new one.
        if ((err as CacheservError).code === 'ECHANGED' && attempt < VERSION_TRIES) continue
        throw err
      }
      if (first.done || first.value.kind !== 'start') throw error('EINTERNAL', 'a read began without START')
      res.writeHead(status, headers)
      await sendBody(res, conn, parts, end - start, { stallMs: host.idleTimeout, onData: (n) => host.onData(n) })
      res.end()
      return
    } finally {
      await parts.return()
    }
  }
}

async function serveDirectory(host: GatewayHost, req: IncomingMessage, res: ServerResponse, target: Target): Promise<void> {
  // Relative links resolve against the directory only when its URL ends in '/'.
  if (!target.raw.endsWith('/')) {
    const location = target.raw + '/'
    return sendText(req, res, 301, 'text/plain; charset=utf-8', `${location}\n`, { location })
  }
  let entries: Entry[] = []
  for await (const part of ls({ path: target.path, long: true }, host.ctx)) {
    if (part.kind === 'result') entries = (part.body as { entries: Entry[] }).entries
  }
  if (wantsJson(req.headers.accept)) return sendText(req, res, 200, 'application/json', jsonIndex(entries), { vary: 'Accept' })
  return sendText(req, res, 200, 'text/html; charset=utf-8', htmlIndex(decodeURIComponent(target.raw), entries), { vary: 'Accept' })
}

function sendText(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string, extra: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache', ...extra })
  res.end(req.method === 'HEAD' ? undefined : body)
}

/** An error as its status, its code in a header and a one-line body. */
function sendError(req: IncomingMessage, res: ServerResponse, err: CacheservError, extra: http.OutgoingHttpHeaders = {}, status = statusOf(err.code)): void {
  const headers: http.OutgoingHttpHeaders = { [ERROR_HEADER]: err.code, ...extra }
  if (isTransient(err.code)) headers['retry-after'] = '1'
  sendText(req, res, status, 'text/plain; charset=utf-8', `${err.code}: ${err.message}\n`, headers)
}
