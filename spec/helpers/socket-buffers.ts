/** How much a loopback TCP connection can hold in the kernel, for specs that bound bytes in flight. */
import { readFileSync } from 'node:fs'

/** The third (largest) figure of a `tcp_rmem`/`tcp_wmem` sysctl, or `fallback` where it cannot be read. */
function largest(name: string, fallback: number): number {
  try {
    const max = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/)[2])
    return Number.isSafeInteger(max) && max > 0 ? max : fallback
  } catch {
    return fallback
  }
}

/**
 * The most one direction of a TCP connection can hold between a sender's
 * write and a receiver's read: the sender's send buffer and the receiver's
 * receive buffer, each at the size autotuning may grow it to. Linux raised
 * the receive maximum from 6 MiB to 32 MiB (6.7), so a fixed allowance that
 * holds on one kernel fails on the next.
 */
export function tcpInFlightMax(): number {
  return largest('tcp_wmem', 4 * 1024 * 1024) + largest('tcp_rmem', 32 * 1024 * 1024)
}
