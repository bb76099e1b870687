/**
 * Refusing a connection beyond the server's limit, before HELLO: the
 * client's connect fails with EBUSY. Whatever the peer sent first is
 * drained, so that the close is a FIN that cannot cut the error off
 * (close-gently.ts); but such a connection holds no slot, so its peer gets
 * 1 s and 64 KiB of input at most.
 */
import type { Duplex } from 'node:stream'
import { checksumId } from '../protocol/checksum.js'
import { type ChecksumName, FrameType } from '../protocol/constants.js'
import { encodeFrame, jsonFrame } from '../protocol/frame.js'
import { closeGently } from './close-gently.js'

/** How long a refused connection (EBUSY) waits for its error to get out, and then for the peer to close first. */
export const BUSY_LINGER_MS = 1000
/** Input a refused connection reads and drops before it cuts the peer off. */
export const BUSY_INPUT_MAX = 64 * 1024

/** Answer EBUSY on id 0 (`serving` connections are served now), in frames summed with `checksum`, and close. */
export function refuseBusy(duplex: Duplex, serving: number, checksum: ChecksumName): void {
  const busy = jsonFrame(FrameType.ERROR, 0, 0, { code: 'EBUSY', message: `the server serves ${serving} connections, its limit; try again later` })
  duplex.on('error', () => {})
  duplex.end(Buffer.concat(encodeFrame(busy, checksumId(checksum))))
  closeGently(duplex, { lingerMs: BUSY_LINGER_MS, flushMs: BUSY_LINGER_MS, maxInput: BUSY_INPUT_MAX })
}
