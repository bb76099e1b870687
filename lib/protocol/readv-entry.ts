/**
 * The entries of a `readv` response (PROTOCOL.md, "readv"): its DATA bytes
 * are one stream holding, for each path asked for in order, a 32-byte
 * header and then the entry's body: the file's bytes, or an error as UTF-8
 * JSON {code, message}. A pure codec: EntryDecoder is fed the stream's
 * pieces as they arrive and hands out whole entries.
 *
 * Header, little-endian: u32 index (the path's position in the request),
 * u32 kind (0 a file, 1 an error), f64 size (of the whole file; 0 for an
 * error), f64 mtimeMs (0 for an error), f64 length (the body's bytes).
 */
import { error } from '../errors.js'

export const ENTRY_HEADER = 32
export const ENTRY_FILE = 0
export const ENTRY_ERROR = 1

export interface EntryHeader {
  index: number
  kind: typeof ENTRY_FILE | typeof ENTRY_ERROR
  size: number
  mtimeMs: number
  length: number
}

export function encodeEntryHeader(h: EntryHeader): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_HEADER)
  b.writeUInt32LE(h.index, 0)
  b.writeUInt32LE(h.kind, 4)
  b.writeDoubleLE(h.size, 8)
  b.writeDoubleLE(h.mtimeMs, 16)
  b.writeDoubleLE(h.length, 24)
  return b
}

export function decodeEntryHeader(b: Buffer): EntryHeader {
  const h = { index: b.readUInt32LE(0), kind: b.readUInt32LE(4), size: b.readDoubleLE(8), mtimeMs: b.readDoubleLE(16), length: b.readDoubleLE(24) }
  if ((h.kind !== ENTRY_FILE && h.kind !== ENTRY_ERROR) || !Number.isSafeInteger(h.length) || h.length < 0 || !Number.isSafeInteger(h.size) || h.size < 0) {
    throw error('EPROTO', `readv: a malformed entry header (${b.toString('hex')})`)
  }
  return h as EntryHeader
}

/** One entry, whole: its header and its body (a Buffer of its own). */
export interface Entry {
  header: EntryHeader
  body: Buffer
}

/**
 * Cuts a readv stream into entries. `push` takes the next verified piece (it
 * may lie in a reused buffer: whatever is kept is copied); `onEntry` gets
 * each entry once its body is complete. `index` must count up from 0.
 */
export class EntryDecoder {
  #header = Buffer.alloc(ENTRY_HEADER)
  #headerFill = 0
  #current: EntryHeader | null = null
  #body: Buffer | null = null
  #bodyFill = 0
  #next = 0

  constructor(private readonly onEntry: (entry: Entry) => void) {}

  /** Between two entries: nothing of one is pending. */
  get atBoundary(): boolean {
    return this.#current === null && this.#headerFill === 0
  }

  push(piece: Buffer): void {
    let at = 0
    while (at < piece.length) {
      if (!this.#current) {
        const n = Math.min(ENTRY_HEADER - this.#headerFill, piece.length - at)
        piece.copy(this.#header, this.#headerFill, at, at + n)
        this.#headerFill += n
        at += n
        if (this.#headerFill < ENTRY_HEADER) return
        this.#headerFill = 0
        const h = decodeEntryHeader(this.#header)
        if (h.index !== this.#next) throw error('EPROTO', `readv: entry ${h.index} where ${this.#next} was due`)
        this.#current = h
        this.#body = Buffer.allocUnsafe(h.length)
        this.#bodyFill = 0
      }
      const body = this.#body!
      const n = Math.min(body.length - this.#bodyFill, piece.length - at)
      piece.copy(body, this.#bodyFill, at, at + n)
      this.#bodyFill += n
      at += n
      if (this.#bodyFill === body.length) {
        const header = this.#current
        this.#current = null
        this.#body = null
        this.#next++
        this.onEntry({ header, body })
      }
    }
  }
}
