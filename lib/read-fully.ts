/**
 * Read `into.length` bytes at `position` with readSync, however many calls it
 * takes; returns the bytes read (fewer only at the end of the file). For
 * files in memory (tmpfs), where a read never waits on a disk.
 */
import { readSync } from 'node:fs'

export function readFullySync(fd: number, into: Uint8Array, position: number): number {
  let got = 0
  while (got < into.length) {
    const n = readSync(fd, into, got, into.length - got, position + got)
    if (n === 0) break
    got += n
  }
  return got
}
