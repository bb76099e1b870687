/**
 * A read's DATA parts written to an HTTP response, pulled one at a time:
 * the next block is asked for only once the socket has taken the last one
 * (write() returned true, or 'drain'), so a client that stops reading holds
 * one block per response. Each part's lease is released when its bytes have
 * been written to the socket; the connection's LeaseBook answers for the
 * rest if the socket goes first.
 *
 * The part that completes the body is held until the read has ended well
 * (every block it read from disk was checked against the file's version), so
 * a body that would mix versions is never complete, and the reset that
 * follows a failure cannot be mistaken for an end.
 */
import type { ServerResponse } from 'node:http'
import { error } from '../errors.js'
import type { Part } from '../stages/items.js'
import type { HttpConnection } from './http-connection.js'

export interface BodyOptions {
  /** Ms a response may wait for the client to take a write before the socket is closed (0: no limit). */
  stallMs: number
  /** Bytes handed to the socket (server statistics). */
  onData?: (bytes: number) => void
}

/** Write the `length` bytes of DATA up to END; throws (the caller resets the socket) if the read fails or the socket goes. */
export async function sendBody(res: ServerResponse, conn: HttpConnection, parts: AsyncGenerator<Part, void, void>, length: number, opts: BodyOptions): Promise<void> {
  let sent = 0
  for (;;) {
    const { value: part, done } = await parts.next()
    if (done || part.kind === 'end') {
      if (sent !== length) throw error('EINTERNAL', `the read ended after ${sent} of ${length} bytes`)
      return
    }
    if (part.kind !== 'data') continue
    const lease = part.lease
    if (lease) conn.leases.hold(lease)
    sent += part.chunk.length
    if (sent === length) await theEnd(parts)
    if (res.destroyed) throw closed()
    opts.onData?.(part.chunk.length)
    const more = res.write(part.chunk, () => {
      conn.progress()
      lease?.release()
    })
    if (!more) await drained(res, opts.stallMs)
  }
}

/** The read's END, after its last DATA part: it comes only once the version has been checked again. */
async function theEnd(parts: AsyncGenerator<Part, void, void>): Promise<void> {
  for (;;) {
    const { value: part, done } = await parts.next()
    if (done || part.kind === 'end') return
    if (part.kind === 'data') throw error('EINTERNAL', 'a read sent more bytes than it announced')
  }
}

/** Resolves when the response may be written to again; rejects when it closes, or stalls past `ms`. */
function drained(res: ServerResponse, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer)
      res.off('drain', onDrain)
      res.off('close', onClose)
      if (err) reject(err)
      else resolve()
    }
    const onDrain = () => done()
    const onClose = () => done(closed())
    const timer = ms > 0 ? setTimeout(() => done(error('ETIMEDOUT', `the client took nothing for ${ms} ms`)), ms) : undefined
    res.on('drain', onDrain)
    res.on('close', onClose)
  })
}

function closed() {
  return error('ECLOSED', 'the client closed the connection')
}
