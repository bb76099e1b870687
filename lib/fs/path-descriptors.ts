/**
 * O_PATH descriptors, the jail's way of holding what a name resolved to:
 * opening one has no effect on the file (a FIFO or a device is not opened),
 * and `/proc/self/fd/<fd>/<name>` then looks a name up inside it.
 */
import { type BigIntStats, closeSync, fstat, open } from 'node:fs'

/** O_PATH (Linux): a descriptor that names a file without opening it; not in fs.constants. */
export const O_PATH = 0o10000000
export const O_NOFOLLOW = 0o400000
export const O_DIRECTORY = 0o200000

export const openFd = (path: string, flags: number) =>
  new Promise<number>((resolve, reject) => open(path, flags, (err, fd) => (err ? reject(err) : resolve(fd))))
export const fstatFd = (fd: number) =>
  new Promise<BigIntStats>((resolve, reject) => fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))))
/** Closing an O_PATH descriptor does no I/O (nothing to flush, no lock), so it is done at once. */
export const release = (fd: number) => {
  try {
    closeSync(fd)
  } catch {
    // already gone: nothing to release
  }
}
