/**
 * Whether a connection comes from this host, and so may read the cache's
 * shared memory itself (short-circuit reads): a unix socket, loopback, or a
 * duplex in this process.
 */
import net from 'node:net'
import type { Duplex } from 'node:stream'

export function isLocalPeer(duplex: Duplex): boolean {
  return !(duplex instanceof net.Socket) || isLocal(duplex.remoteAddress)
}

/** A unix socket has no remote address; loopback is 127/8, ::1, or 127/8 mapped into IPv6. */
function isLocal(address: string | undefined): boolean {
  return address === undefined || address === '::1' || /^(::ffff:)?127\./.test(address)
}
