/**
 * inotify for the metadata cache: one descriptor, a watch per directory held
 * in the cache, and its queue read without waiting (native/dirs.cc). The
 * queue is read before every answer from the cache: the kernel queues the
 * event of a change before the system call that made it returns, so any
 * change that finished before a request came in is seen before it is
 * answered. A filesystem mounted or unmounted on a directory changes what
 * is under it with no inotify event: the mount table is asked too.
 */
import { closeSync } from 'node:fs'
import { shmNative } from '../cache/shm-native.js'
import createDebug from '../debug.js'

const debug = createDebug('cacheserv:meta')

/** Event bits (linux/inotify.h) the cache tells apart. */
export const IN_DELETE_SELF = 0x400
export const IN_Q_OVERFLOW = 0x4000
export const IN_IGNORED = 0x8000

export class DirWatch {
  readonly #fd: number
  /** /proc/self/mountinfo, or -1. */
  readonly #mounts: number
  readonly #native: NonNullable<ReturnType<typeof shmNative>>
  #closed = false

  private constructor(fd: number, native: NonNullable<ReturnType<typeof shmNative>>) {
    this.#fd = fd
    this.#native = native
    this.#mounts = native.mountsOpen()
  }

  /** Null without the native addon or inotify. */
  static open(): DirWatch | null {
    const native = shmNative()
    if (!native) return null
    try {
      return new DirWatch(native.watchInit(), native)
    } catch (err) {
      debug('no inotify: %s', (err as Error).message)
      return null
    }
  }

  /** Watch the directory `path` names (a held one's /proc/self/fd path); null when it cannot be (no watches left). */
  add(path: string): number | null {
    if (this.#closed) return null
    try {
      return this.#native.watchAdd(this.#fd, path)
    } catch (err) {
      debug('no watch for a directory: %s', (err as Error).message)
      return null
    }
  }

  remove(wd: number): void {
    if (!this.#closed) this.#native.watchRemove(this.#fd, wd)
  }

  /** A filesystem was mounted or unmounted since the last call: what is held may be hidden or uncovered. */
  mountsChanged(): boolean {
    return !this.#closed && this.#mounts >= 0 && this.#native.mountsChanged(this.#mounts)
  }

  /** Each queued event, in order. */
  drain(on: (wd: number, mask: number) => void): void {
    if (this.#closed) return
    const events = this.#native.watchRead(this.#fd)
    for (let i = 0; i < events.length; i += 2) on(events[i], events[i + 1] >>> 0)
  }

  close(): void {
    if (this.#closed) return
    this.#closed = true
    for (const fd of [this.#fd, this.#mounts]) {
      try {
        if (fd >= 0) closeSync(fd)
      } catch {
        // already closed
      }
    }
  }
}
