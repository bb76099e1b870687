/**
 * Short-circuit reads: on the server's host, a file's cached blocks are read
 * straight from the server's shared-memory store, where `locate` says they
 * are (PROTOCOL.md, "Short-circuit reads"). The slab files are read-only to
 * clients and the server holds the blocks under the answer's grant, so the
 * bytes are the ones it checked when it cached them, as long as the read ends
 * within the grant's time; past it, they are not used.
 */
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { error } from '../errors.js'
import { readFullySync } from '../read-fully.js'

/** Margin before a grant's end after which bytes read under it are not trusted, ms. */
export const TTL_MARGIN_MS = 1000

/** [slab index, offset, length, crc32] */
export type LocatedBlock = [number, number, number, number]

/** A located file, or range of one (`offset`, `length`: its bytes start `skip` bytes into the first block). */
export type LocatedFile =
  | { path: string; size: number; mtimeMs: number; blocks: LocatedBlock[] | null; offset?: number; length?: number; skip?: number }
  | { path: string; code: string; message: string }

export interface LocateAnswer {
  lease: number | null
  ttl: number
  dir: string
  slabs: string[]
  files: LocatedFile[]
}

/** One located file, or range of one, as `locate` answered it. */
type Located = { path: string; size: number; blocks: LocatedBlock[]; length?: number; skip?: number }

/** The slab files a client has opened, each once. */
export class SlabFiles {
  #fds = new Map<string, number>()

  /**
   * The bytes of one located file, or null when the grant (asked for at
   * `grantedAt`, performance.now()) ended before the read did.
   */
  read(answer: LocateAnswer, file: Located, grantedAt: number): Buffer | null {
    const out = Buffer.allocUnsafe(file.length ?? file.size)
    let at = 0
    for (const part of this.#parts(answer, file)) at += part.readInto(out.subarray(at, at + part.length))
    if (at !== out.length) throw error('EPROTO', `${file.path}: ${out.length} bytes located, ${at} in its blocks`)
    return performance.now() - grantedAt > answer.ttl - TTL_MARGIN_MS ? null : out
  }

  /**
   * Hand the located bytes to `move` a block at a time: its part's length,
   * the slab's descriptor and the part's offset there. Stops before a block
   * once the grant (asked for at `grantedAt`) is too near its end for the
   * block to be read in time. Returns the bytes handed on; fewer than the
   * file's means the rest must be read elsewhere.
   */
  stream(answer: LocateAnswer, file: Located, grantedAt: number, move: (length: number, fd: number, offset: number) => void): number {
    let at = 0
    for (const part of this.#parts(answer, file)) {
      if (performance.now() - grantedAt > answer.ttl - TTL_MARGIN_MS) break
      move(part.length, part.fd, part.from)
      at += part.length
    }
    return at
  }

  /**
   * The located bytes block by block: each block's part of the file or range
   * (the first may start `skip` bytes in, the last end early), read from its
   * slab on demand. The slabs are in memory (tmpfs): reading them
   * synchronously costs a copy, never a wait.
   */
  *#parts(answer: LocateAnswer, file: Located): Generator<{ length: number; fd: number; from: number; readInto(into: Buffer): number }> {
    const want = file.length ?? file.size
    let skip = file.skip ?? 0
    let at = 0
    for (const [slab, offset, length] of file.blocks) {
      const n = Math.min(length - skip, want - at)
      if (n > 0) {
        const fd = this.#fd(answer.dir, answer.slabs[slab])
        const from = offset + skip
        yield {
          length: n,
          fd,
          from,
          readInto: (into) => {
            SlabFiles.readInto(fd, from, into, file.path)
            return into.length
          },
        }
        at += n
      }
      skip = Math.max(0, skip - length)
    }
  }

  /** Read `into.length` bytes of a slab at `offset`. */
  static readInto(fd: number, offset: number, into: Buffer, path: string): void {
    if (readFullySync(fd, into, offset) !== into.length) throw error('EIO', `${path}: the shared-memory store ended early`)
  }

  close(): void {
    for (const fd of this.#fds.values()) closeSync(fd)
    this.#fds.clear()
  }

  #fd(dir: string, name: string): number {
    const path = join(dir, name)
    let fd = this.#fds.get(path)
    if (fd === undefined) {
      fd = openSync(path, 'r')
      this.#fds.set(path, fd)
    }
    return fd
  }
}
