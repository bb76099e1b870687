/**
 * A file open for reading by its bare descriptor, with the part of
 * FileHandle the server uses: positioned reads, fstat, close. What a
 * descriptor opened outside node:fs (lib/fs/open-beneath.ts) is wrapped in.
 * With the native addon, a block is read whole and the file's identity taken
 * after it in one trip to the thread pool (readThenStat).
 */
import { type BigIntStats, close, fstat, read } from 'node:fs'
import { shmNative } from '../cache/shm-native.js'
import { type FileStat, nativeStat } from './identity.js'

/** What the server does with an open file: node's FileHandle is one, an FdFile another. */
export interface ReadableFile {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>
  stat(opts: { bigint: true }): Promise<BigIntStats>
  close(): Promise<void>
}

export class FdFile implements ReadableFile {
  readonly fd: number
  #closed = false

  constructor(fd: number) {
    this.fd = fd
  }

  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    return new Promise((resolve, reject) => read(this.fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead }))))
  }

  stat(): Promise<BigIntStats> {
    return new Promise((resolve, reject) => fstat(this.fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))))
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve()
    this.#closed = true
    return new Promise((resolve, reject) => close(this.fd, (err) => (err ? reject(err) : resolve())))
  }
}

/** Where a buffer's bytes live in a file: a store slot's place in its slab (lib/cache/shm-store.ts). */
export interface FilePlace {
  fd: number
  offset: number
}

/**
 * `length` bytes of the file at `position` into `buffer` at `offset` (fewer
 * only where the file ends), then its fstat: what a block read needs to know
 * its bytes are one version's. `reads`: read calls made (one for the native
 * job, whatever it took inside). With `place`, `buffer` maps that place of a
 * file, and the bytes are written there by the kernel (spliceStat) rather
 * than through the mapping.
 */
export async function readThenStat(fh: ReadableFile, buffer: Buffer, offset: number, length: number, position: number, place?: FilePlace): Promise<{ bytesRead: number; reads: number; st: FileStat }> {
  const native = fh instanceof FdFile ? shmNative() : null
  if (native) {
    const fd = (fh as FdFile).fd
    return new Promise((resolve, reject) => {
      const done = (code: string | null, bytesRead: number, raw: BigInt64Array) => {
        if (code !== null) return reject(Object.assign(new Error(`${code}: reading a block${place ? ' into the store' : ''}`), { code, syscall: place ? 'splice' : 'read' }))
        resolve({ bytesRead, reads: 1, st: nativeStat(raw) })
      }
      if (place) native.spliceStat(fd, position, length, place.fd, place.offset + offset, done)
      else native.readStat(fd, buffer, offset, length, position, done)
    })
  }
  let bytesRead = 0
  let reads = 0
  while (bytesRead < length) {
    reads++
    const n = (await fh.read(buffer, offset + bytesRead, length - bytesRead, position + bytesRead)).bytesRead
    if (n === 0) break
    bytesRead += n
  }
  return { bytesRead, reads, st: await fh.stat({ bigint: true }) }
}
