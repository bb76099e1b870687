/**
 * The cheap way to open a file of the served tree: one job on the thread
 * pool (native/shm.cc) resolves the path under the root's descriptor with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), fstats what it found, and
 * opens it for reading only if it is a regular file; the walk of jail.ts
 * takes a round trip to the pool per name on the way and per step.
 *
 * It answers only for paths whose every name is a plain directory or the
 * file itself, under the root: no symlink anywhere (the kernel refuses one
 * with ELOOP), no '..' (refused before, and by RESOLVE_BENEATH). Anything
 * else (a symlink, a missing name, a directory, a FIFO, an old kernel, no
 * native addon) gets null, and the walk decides, in its own words. So the
 * files it opens are exactly those the walk would open by the same names.
 */
import { shmNative } from '../cache/shm-native.js'
import { type FileStat, nativeStat } from './identity.js'

/** Set once the kernel says it has no openat2 (ENOSYS): the walk only, from then on. */
let unsupported = false

/** `parts` (checked segments, at least one) opened for reading under the directory descriptor `dir`, or null. */
export function openBeneath(dir: number, parts: readonly string[]): Promise<{ fd: number; st: FileStat } | null> {
  const native = shmNative()
  if (!native || unsupported || parts.length === 0) return Promise.resolve(null)
  return new Promise((resolve) => {
    native.openBeneath(dir, parts.join('/'), (code, fd, raw) => {
      if (code === 'ENOSYS') unsupported = true
      if (code !== null || fd < 0) return resolve(null)
      resolve({ fd, st: nativeStat(raw) })
    })
  })
}
