/**
 * A file written to the server (`write`, on a server started writable): the
 * bytes go out as checksummed DATA pages on the request's id, then END with
 * the length; the server answers with one RESULT once the file is renamed
 * into place (PROTOCOL.md, Uploads).
 */
import { once } from 'node:events'
import { error } from '../errors.js'
import { checksumId } from '../protocol/checksum.js'
import { type ChecksumName, FrameType, MAX_UPLOAD_PAYLOAD } from '../protocol/constants.js'
import { encodeFrame } from '../protocol/frame.js'
import type { RequestControl } from './handlers.js'
import type { Link } from './link.js'
import { ResultRequest } from './result-request.js'

export type UploadSource = Buffer | AsyncIterable<Buffer | Uint8Array>

/** Upload `data` to `path` as request `id` on `link`; resolves with what the server stored. */
export async function upload(link: Link, id: number, control: RequestControl, path: string, data: UploadSource): Promise<{ path: string; size: number }> {
  let total = 0
  let ended = false
  // Never NACKed: the server cannot resend an upload (the bytes are ours), so a NACK would only
  // make it fail. A lost RESULT shows as silence (ETIMEDOUT once the connection is quiet); a
  // damaged one still says the file is stored, as big as what was sent (once all was sent).
  const known = () => (ended ? { path, size: total } : null)
  const req = new ResultRequest<{ path: string; size: number }>(control, { once: { known } })
  const settled = req.promise.then(
    () => true,
    () => true,
  )
  let finished = false
  void settled.then(() => (finished = true))
  link.register(id, req, 'write', Buffer.isBuffer(data) ? { path, length: data.length } : { path })
  const checksum = checksumId(link.hello.checksum as ChecksumName)
  // Pages as HELLO says, but no bigger than a server takes from a client (PROTOCOL.md, Uploads).
  const page = Math.min(link.hello.pageSize, MAX_UPLOAD_PAYLOAD)
  let seq = 1
  const sendFrame = async (type: FrameType, payload: Buffer) => {
    // A frame's header and payload go out together, then we wait: waiting between them would
    // let another upload's frame (or a request line) in between, and the server would misread both.
    let room = true
    link.lastActive = Date.now()
    for (const buf of encodeFrame({ type, id, seq: seq++, payload }, checksum)) room = link.socket.write(buf)
    // A socket error surfaces as the request's ECLOSED (through done), not as a raw ECONNRESET here.
    if (!room) await Promise.race([once(link.socket, 'drain').catch(() => {}), settled, link.done])
  }
  // Chunks are awaited against the request's end: once it has failed (EROFS, the connection
  // went), a source that is slow to produce (a terminal on stdin) must not keep the write waiting.
  const source = Buffer.isBuffer(data) ? (async function* () { yield data })() : data
  const chunks = source[Symbol.asyncIterator]()
  const stopped = Promise.race([settled, link.done]).then(() => null)
  // While we send, the server has nothing to say: its silence is not a loss (see Link's watchdog).
  link.sending++
  try {
    while (!finished && !link.ended) {
      const next = await Promise.race([chunks.next(), stopped])
      if (next === null) {
        chunks.return?.().catch(() => {})
        break
      }
      if (next.done) break
      const buf = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value)
      for (let at = 0; at < buf.length && !finished && !link.ended; at += page) {
        const payload = buf.subarray(at, at + page)
        total += payload.length
        await sendFrame(FrameType.DATA, payload)
      }
    }
  } catch (err) {
    // The bytes to upload failed: stop the upload on the server (its temporary file goes) and say why.
    link.handlers.delete(id)
    if (!link.ended) link.send(id, 'cancel')
    req.onAbort(err as Error)
    throw err
  } finally {
    link.sending--
  }
  if (!finished && !link.ended) {
    ended = true
    await sendFrame(FrameType.END, Buffer.from(JSON.stringify({ length: total })))
  }
  const result = await req.promise
  if (result?.size !== total) throw error('EPROTO', `the server stored ${String(result?.size)} bytes of ${path}; ${total} were sent`)
  return result
}
