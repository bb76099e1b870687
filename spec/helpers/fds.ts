/**
 * This process's open file descriptors, for leak checks. A server's
 * shared-memory store holds one descriptor per slab file it has made, as
 * long as it runs; those are the cache's memory, not a leak, and not counted.
 */
import { readdirSync, readlinkSync } from 'node:fs'

export function fdCount(): number {
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    let target = ''
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`)
    } catch {
      // closed meanwhile (the listing's own descriptor)
    }
    if (!/^\/dev\/shm\/.*\/slab-\d+-\d+$/.test(target)) n++
  }
  return n
}
