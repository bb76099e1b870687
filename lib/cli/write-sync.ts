/**
 * Synchronous writes of whole buffers to stdout. The client CLI's `read`
 * writes each verified piece straight from the connection's reused receive
 * buffer, so the piece must be out before the next socket read reuses that
 * memory; a blocking write also gives the backpressure (a slow reader blocks
 * the client, the server's socket fills, the server stops reading the file).
 */
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs'

const pause = new Int32Array(new SharedArrayBuffer(4))

/**
 * A descriptor for stdout that blocks when the reader is behind. Node makes
 * a pipe on fd 1 non-blocking once process.stdout is used; a pipe opened
 * again through /proc is a blocking descriptor of the same pipe (Linux).
 * Anything else (a file, a terminal) is fd 1 itself.
 */
export function stdoutForSyncWrites(): { fd: number; pipe: boolean; close(): void } {
  try {
    if (fstatSync(1).isFIFO()) {
      // A blocking open of a FIFO waits for a reader: probe without blocking first (ENXIO: none left,
      // and writes to fd 1 fail with EPIPE as they should).
      closeSync(openSync('/proc/self/fd/1', constants.O_WRONLY | constants.O_NONBLOCK))
      const fd = openSync('/proc/self/fd/1', constants.O_WRONLY)
      return { fd, pipe: true, close: () => closeSync(fd) }
    }
  } catch {
    // no /proc: fd 1 with the EAGAIN fallback below
  }
  return { fd: 1, pipe: false, close: () => {} }
}

/** Write all of `chunk`; on a non-blocking descriptor whose reader is behind (EAGAIN), wait a moment and go on. */
export function writeAllSync(fd: number, chunk: Uint8Array): void {
  let at = 0
  while (at < chunk.length) {
    try {
      at += writeSync(fd, chunk, at, chunk.length - at)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
      Atomics.wait(pause, 0, 0, 1)
    }
  }
}
