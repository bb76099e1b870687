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

export type LocatedFile = { path: string; size: number; blocks: LocatedBlock[] | null } | { path: string; code: string; message: string }

export interface LocateAnswer {
  lease: number | null
  ttl: number
  dir: string
  slabs: string[]
  files: LocatedFile[]
}

/** The slab files a client has opened, each once. */
export class SlabFiles {
  #fds = new Map<string, number>()

  /**
   * The bytes of one located file, or null when the grant (asked for at
   * `grantedAt`, performance.now()) ended before the read did. With `verify`,
   * each block is checked against its crc32.
   */
  read(answer: LocateAnswer, file: { path: string; size: number; blocks: LocatedBlock[] }, grantedAt: number, verify = false): Buffer | null {
    const out = Buffer.allocUnsafe(file.size)
    let at = 0
    for (const [slab, offset, length, crc] of file.blocks) {
      const part = out.subarray(at, at + length)
      let got = 0
      while (got < length) {
        const n = readSync(this.#fd(answer.dir, answer.slabs[slab]), part, got, length - got, offset + got)
        if (n === 0) throw error('EIO', `${file.path}: the shared-memory store ended early`)
        got += n
      }
      if (verify && crc32(part) !== crc) throw error('ECHECKSUM', `${file.path}: a block failed its crc32 in shared memory`)
      at += length
    }
    if (at !== file.size) throw error('EPROTO', `${file.path}: ${file.size} bytes located, ${at} in its blocks`)
    return performance.now() - grantedAt > answer.ttl - TTL_MARGIN_MS ? null : out
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
