/**
 * A file open for reading by its bare descriptor, with the part of
 * FileHandle the server uses: positioned reads, fstat, close. What a
 * descriptor opened outside node:fs (lib/fs/open-beneath.ts) is wrapped in.
 */
import { type BigIntStats, close, fstat, read } from 'node:fs'

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
