/**
 * nack {id, seq, offset, resync}: the receiver verified request `id`'s frames
 * before `seq` (`offset` DATA bytes) and discards the rest until a RESYNC
 * numbered `resync`; the connection sends the response again from there
 * (PROTOCOL.md, "NACK").
 */
import { error } from '../errors.js'
import { MAX_ID } from '../protocol/constants.js'
import type { ControlSpec } from './context.js'

const valid = (n: unknown, max: number): n is number => Number.isSafeInteger(n) && (n as number) >= 0 && (n as number) <= max

export const nack: ControlSpec = {
  control: (id, { seq, offset, resync }, connection) => {
    // seq goes into a u32 header field: a larger one would only fail later, in the framer.
    if (!valid(seq, MAX_ID) || !valid(offset, Number.MAX_SAFE_INTEGER) || !valid(resync, Number.MAX_SAFE_INTEGER)) {
      return connection.refuse(id, error('EBADREQ', 'nack needs non-negative integers "seq" (at most 2^32 - 1), "offset" and "resync"'))
    }
    connection.nack(id, { seq, offset, resync })
  },
}
