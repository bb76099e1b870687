/**
 * Closing a connection whose last responses are written, without a RST.
 *
 * Closing a socket that has unread input makes the kernel send RST instead
 * of FIN, and a RST can destroy the last responses on their way: the peer's
 * stack drops what its application had not read yet. A server that is done
 * with a peer still sending (after a fatal request error, say) must
 * therefore keep reading, and dropping, until the peer closes its side.
 */
import type { Duplex } from 'node:stream'

/** Longest wait for the peer's FIN once our last bytes are out. */
export const LINGER_MS = 2000
/** Longest wait for our last bytes to get out (a peer that does not read never takes them). */
export const FLUSH_MS = 10_000

/**
 * Destroy `duplex` once both sides are over: its writable side must be
 * ended (or ending) by the caller. Meanwhile its input is read and dropped,
 * up to `maxInput` bytes: a peer that sends more is cut off at once.
 */
export function closeGently(duplex: Duplex, { lingerMs = LINGER_MS, flushMs = FLUSH_MS, maxInput = Infinity } = {}): void {
  if (duplex.destroyed) return
  const destroy = () => duplex.destroy()
  const over = () => duplex.readableEnded && duplex.writableFinished
  if (!duplex.readableEnded) {
    // Nobody needs the input any more; reading it on also keeps a peer that writes before it reads from blocking.
    duplex.unpipe()
    let dropped = 0
    duplex.on('data', (chunk: Buffer) => {
      if ((dropped += chunk.length) > maxInput) destroy()
    })
    duplex.resume()
  }
  let timer: NodeJS.Timeout | undefined
  const wait = (ms: number) => {
    clearTimeout(timer)
    timer = setTimeout(destroy, ms)
    timer.unref()
  }
  const onFinish = () => (over() ? destroy() : wait(lingerMs))
  if (duplex.writableFinished) onFinish()
  else {
    wait(flushMs)
    duplex.once('finish', onFinish)
  }
  duplex.once('end', () => over() && destroy())
  duplex.once('close', () => clearTimeout(timer))
}
