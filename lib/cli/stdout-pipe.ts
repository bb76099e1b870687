/**
 * The pipe on stdout, made fit for `read f | python`. Each write(2) into a
 * pipe moves at most its buffer, 64 KiB by default on Linux, so the two
 * processes would hand bytes over 64 KiB at a time; at 1 MiB (the default
 * ceiling for unprivileged processes, /proc/sys/fs/pipe-max-size) the copies
 * set the pace. Blocks of the server's shared memory are then moved into it
 * with splice(2), which copies nothing on this side. Loaded only when stdout
 * is a pipe.
 */
import { shmNative } from '../cache/shm-native.js'
import type { PipeTarget } from '../client/types.js'

/** The pipe buffer this client asks for. */
export const PIPE_BYTES = 1024 * 1024

/** The pipe `fd` grown to PIPE_BYTES, as a target for splice; null where it cannot be (no native addon, a lower ceiling). */
export function widePipe(fd: number): PipeTarget | null {
  const native = shmNative()
  if (!native) return null
  try {
    if (native.pipeSize(fd, PIPE_BYTES) < PIPE_BYTES) return null
  } catch {
    // EPERM past the system's ceiling, EBUSY when the pipe holds more than asked for: it stays as it is.
    return null
  }
  return {
    size: () => native.pipeSize(fd),
    unread: () => native.pipeUnread(fd),
    splice: (from, offset, length) => native.splice(from, offset, fd, length),
  }
}
