/**
 * Short-circuit reads: on the server's host, a file's cached blocks are read
 * straight from the server's shared-memory store, where `locate` says they
 * are (PROTOCOL.md, "Short-circuit reads"). The slab files are read-only to
 * clients and the server holds the blocks under the answer's grant, so the
 * bytes are the ones it checked when it cached them, as long as the read ends
 * within the grant's time; past it, they are not used.
 */
import { closeSync, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { error } from '../errors.js'
import { crc32 } from '../protocol/crc32.js'

/** Seconds-worth of margin before a grant's end after which bytes read under it are not trusted. */
const TTL_MARGIN_MS = 1000

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

function readAll(fd: number, into: Buffer, position: number, path: string): void {
  let got = 0
  while (got < into.length) {
    const n = readSync(fd, into, got, into.length - got, position + got)
    if (n === 0) throw error('EIO', `${path}: the shared-memory store ended early`)
    got += n
  }
}

/** The slab files a client has opened, each once. */
export class SlabFiles {
  #fds = new Map<string, number>()

  /**
   * The bytes of one located file, or null when the grant (asked for at
   * `grantedAt`, performance.now()) ended before the read did. With `verify`,
   * each block is checked against its crc32.
   */
  read(answer: LocateAnswer, file: { path: string; size: number; blocks: LocatedBlock[]; length?: number; skip?: number }, grantedAt: number, verify = false): Buffer | null {
    const want = file.length ?? file.size
    const out = Buffer.allocUnsafe(want)
    // Bytes of the blocks to pass over before the range, and the range's bytes still to read.
    let skip = file.skip ?? 0
    let at = 0
    for (const [slab, offset, length, crc] of file.blocks) {
      const fd = this.#fd(answer.dir, answer.slabs[slab])
      if (verify) {
        const block = Buffer.allocUnsafe(length)
        readAll(fd, block, offset, file.path)
        if (crc32(block) !== crc) throw error('ECHECKSUM', `${file.path}: a block failed its crc32 in shared memory`)
        at += block.copy(out, at, skip, Math.min(length, skip + want - at))
      } else {
        const n = Math.min(length - skip, want - at)
        if (n > 0) readAll(fd, out.subarray(at, at + n), offset + skip, file.path)
        at += Math.max(0, n)
      }
      skip = Math.max(0, skip - length)
    }
    if (at !== want) throw error('EPROTO', `${file.path}: ${want} bytes located, ${at} in its blocks`)
    return performance.now() - grantedAt > answer.ttl - TTL_MARGIN_MS ? null : out
  }

  /**
   * Hand the located bytes to `onPiece` a block at a time, each read into
   * `scratch` (grown as needed) and valid only until `onPiece` returns.
   * Stops before a block once the grant (asked for at `grantedAt`) is too
   * near its end for the block to be read in time. Returns the bytes handed
   * on; fewer than the file's means the rest must be read elsewhere.
   */
  stream(answer: LocateAnswer, file: { path: string; size: number; blocks: LocatedBlock[]; length?: number; skip?: number }, grantedAt: number, scratch: { buf: Buffer }, onPiece: (piece: Buffer) => void): number {
    const want = file.length ?? file.size
    let skip = file.skip ?? 0
    let at = 0
    for (const [slab, offset, length] of file.blocks) {
      if (at >= want) break
      if (performance.now() - grantedAt > answer.ttl - TTL_MARGIN_MS) break
      const n = Math.min(length - skip, want - at)
      if (n > 0) {
        if (scratch.buf.length < n) scratch.buf = Buffer.allocUnsafe(n)
        const piece = scratch.buf.subarray(0, n)
        readAll(this.#fd(answer.dir, answer.slabs[slab]), piece, offset + skip, file.path)
        onPiece(piece)
        at += n
      }
      skip = Math.max(0, skip - length)
    }
    return at
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
