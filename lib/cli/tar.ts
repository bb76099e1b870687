/**
 * `tar`: files as a POSIX tar stream on stdout, in order, over one
 * connection. Small files are fetched ahead in `readv` batches (one request
 * for hundreds of files); a big one is streamed through at its turn, so
 * memory stays bounded whatever the sizes. Each member's header carries the
 * size and mtime the server announced with the file's bytes, so no path is
 * stat'ed first and the archive starts with the first file.
 *
 * A complete archive ends with a manifest member (MANIFEST_NAME: member
 * count, bytes, and a digest over every member's name, size and sha256) and
 * then the end-of-archive blocks. A failed one has neither: it stops at the
 * failure, and when that falls between members it ends with a mark (see
 * truncationMark) that makes readers which take a stream ending between
 * members for a whole archive fail. Python reads the stream with
 * `tarfile.open(fileobj=sys.stdin.buffer, mode='r|')` (the WebDataset way),
 * or with `iter_tar` of the Python client, which checks the manifest.
 */
import { once } from 'node:events'
import { createHash } from 'node:crypto'
import type { Writable } from 'node:stream'
import type { Client } from '../client/client.js'
import type { BatchEntry, BatchItem } from '../client/read-batches.js'
import type { ReadInfo, ReadStream } from '../client/read-stream.js'
import { error } from '../errors.js'
import { END_OF_ARCHIVE, memberHeader, padding, truncationMark } from './tar-format.js'

/** The last member of a complete archive. */
export const MANIFEST_NAME = '.cacheserv-manifest.json'

/** A file to archive; `size` when already known (from `ls`), else START tells. */
export interface TarFile {
  path: string
  size?: number
}

export interface TarOptions {
  /** End the archive with the manifest member (default true). */
  manifest?: boolean
}

/** Files up to this size (when it is known) are fetched ahead, whole. */
const SMALL = 16 * 1024 * 1024
/** A file of unknown size is fetched ahead up to this many bytes; a bigger one is streamed at its turn. */
const PROBE = 1024 * 1024
/** Files and bytes fetched ahead at most. */
const AHEAD_FILES = 4096
const AHEAD_BYTES = 64 * 1024 * 1024

export async function writeTar(client: Client, files: AsyncIterable<TarFile> | Iterable<TarFile>, out: Writable, opts: TarOptions = {}): Promise<void> {
  const sink = new TarSink(out)
  const manifest = opts.manifest === false ? null : new Manifest()
  const ahead = new Ahead(client, files)
  try {
    for (let item = await ahead.next(); item !== null; item = await ahead.next()) {
      const { file } = item
      if (manifest && file.path === MANIFEST_NAME) {
        throw error('EBADREQ', `${file.path} would be taken for the archive's manifest; archive it with --no-manifest`)
      }
      const fetched = item.entry && (await item.entry)
      const hash = createHash('sha256')
      let info: ReadInfo
      if (fetched && fetched.data.length === fetched.size) {
        info = { size: fetched.size, offset: 0, length: fetched.size, mtimeMs: fetched.mtimeMs }
        checkSize(file, info)
        await sink.header(file.path, info)
        hash.update(fetched.data)
        await sink.data(fetched.data)
        ahead.done(item)
      } else {
        // Too big to hold (known so, or more than the bytes fetched ahead): streamed, its header
        // written once START has said the size.
        ahead.done(item)
        const stream = client.read(file.path)
        ahead.cancelOnStop(stream)
        ;[info] = (await once(stream, 'info')) as [ReadInfo]
        checkSize(file, info)
        await sink.header(file.path, info)
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          hash.update(chunk)
          await sink.data(chunk)
        }
      }
      await sink.endMember()
      manifest?.add(file.path, info, hash.digest('hex'))
    }
    if (manifest) {
      const body = manifest.json()
      await sink.header(MANIFEST_NAME, { length: body.length, mtimeMs: manifest.mtimeMs })
      await sink.data(body)
      await sink.endMember()
    }
    await sink.finish()
  } catch (err) {
    ahead.stop()
    await sink.fail(err as Error)
    throw sink.outError ?? err
  }
}

function checkSize(file: TarFile, info: ReadInfo): void {
  if (file.size !== undefined && info.size !== file.size) {
    throw error('ECHANGED', `${file.path} changed size while the archive was written; run it again`)
  }
}

/**
 * The manifest: `{"version":1,"files":N,"bytes":B,"sha256":HEX}`, where
 * `sha256` is taken over, for every member in order, its name (UTF-8), a NUL,
 * its size in decimal, a NUL, the sha256 of its bytes in lowercase hex, and a
 * newline. Its mtime is the newest member's, so the same files make the same
 * archive.
 */
class Manifest {
  files = 0
  bytes = 0
  mtimeMs = 0
  #digest = createHash('sha256')

  add(name: string, info: ReadInfo, sha256: string): void {
    this.files++
    this.bytes += info.length
    this.mtimeMs = Math.max(this.mtimeMs, info.mtimeMs)
    this.#digest.update(`${name}\0${info.length}\0${sha256}\n`)
  }

  json(): Buffer {
    return Buffer.from(`${JSON.stringify({ version: 1, files: this.files, bytes: this.bytes, sha256: this.#digest.digest('hex') })}\n`)
  }
}

/** Writes the archive's bytes to `out`, with its backpressure, and knows whether it stands between members. */
class TarSink {
  outError: Error | null = null
  #out: Writable
  #written = 0
  /** Bytes of the current member still to come; -1 between members. */
  #inMember = -1
  #size = 0

  constructor(out: Writable) {
    this.#out = out
    out.on('error', (err: Error) => (this.outError ??= err))
  }

  async header(name: string, info: Pick<ReadInfo, 'length' | 'mtimeMs'>): Promise<void> {
    await this.#write(memberHeader({ name, size: info.length, mtimeMs: info.mtimeMs }))
    this.#inMember = info.length
    this.#size = info.length
  }

  async data(chunk: Buffer): Promise<void> {
    this.#inMember -= chunk.length
    await this.#write(chunk)
  }

  async endMember(): Promise<void> {
    if (this.#inMember !== 0) throw error('EINTERNAL', `a tar member got ${this.#size - this.#inMember} bytes of ${this.#size}`)
    await this.#write(padding(this.#size))
    this.#inMember = -1
  }

  async finish(): Promise<void> {
    await this.#write(END_OF_ARCHIVE)
    await this.#end()
  }

  /** Ends a failed stream: no manifest, no end-of-archive blocks, and the truncation mark when it stopped between members. */
  async fail(err: Error): Promise<void> {
    if (this.outError) return
    try {
      const code = (err as NodeJS.ErrnoException).code
      if (this.#written > 0 && this.#inMember === -1) await this.#write(truncationMark(code ? `${code}: ${err.message}` : err.message))
      await this.#end()
    } catch {
      // out failed too: outError says how
    }
  }

  async #write(buf: Buffer): Promise<void> {
    if (this.outError) throw this.outError
    if (buf.length === 0) return
    this.#written += buf.length
    if (this.#out.write(buf)) return
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        this.#out.off('drain', done)
        this.#out.off('error', done)
        if (err) reject(err)
        else resolve()
      }
      this.#out.on('drain', done)
      this.#out.on('error', done)
    })
  }

  #end(): Promise<void> {
    return new Promise((resolve, reject) => this.#out.end((err?: Error | null) => (err ? reject(err) : resolve())))
  }
}

interface Item {
  file: TarFile
  /** Bytes counted against AHEAD_BYTES. */
  reserved: number
  /** The file's entry (its bytes, or its first PROBE bytes), fetched ahead; null when it is streamed at its turn. */
  entry: Promise<BatchEntry> | null
}

/**
 * The files in order, the small ones fetched ahead in readv batches as far
 * as the window allows (AHEAD_FILES files, AHEAD_BYTES bytes). A file is
 * asked for with one byte more than its known size, so one that grew since it
 * was listed shows, and a file of unknown size (a list) for its first PROBE
 * bytes; a file bigger than that is streamed at its turn. The connection is
 * never held for the entries waiting here (the window bounds them), so a
 * stream at its turn always flows. Files are pulled from the source only as
 * the window has room, so a list fed slowly is archived as it comes.
 */
class Ahead {
  #client: Client
  #source: AsyncIterator<TarFile> | Iterator<TarFile>
  #items: Item[] = []
  #bytes = 0
  /** Pulled from the source, waiting for room. */
  #pending: TarFile | null = null
  #ended = false
  #failure: { err: unknown } | null = null
  #pulling = false
  #stopped = false
  #streams = new Set<ReadStream>()
  #wake: (() => void) | null = null
  /** What the batches ask for, in order, and who waits for each answer. */
  #feed = new Feed<BatchItem>()
  #waiting: { item: Item; resolve(e: BatchEntry): void; reject(err: Error): void }[] = []
  #entries: AsyncGenerator<BatchEntry, void, void> | null = null

  constructor(client: Client, files: AsyncIterable<TarFile> | Iterable<TarFile>) {
    this.#client = client
    this.#source = Symbol.asyncIterator in files ? files[Symbol.asyncIterator]() : files[Symbol.iterator]()
  }

  /** The next file, its fetch under way; null after the last. Throws what the source threw, in its place. */
  async next(): Promise<Item | null> {
    for (;;) {
      this.#fill()
      const item = this.#items.shift()
      if (item) return item
      if (this.#failure) throw this.#failure.err
      if (this.#ended && this.#pending === null) return null
      await new Promise<void>((resolve) => (this.#wake = resolve))
    }
  }

  /** The consumer is through with an item's fetched bytes: they leave the window. */
  done(item: Item): void {
    this.#bytes -= item.reserved
    item.reserved = 0
    this.#fill()
  }

  cancelOnStop(stream: ReadStream): void {
    this.#streams.add(stream)
    stream.once('close', () => this.#streams.delete(stream))
  }

  /** Cancels every read under way and lets go of the source. */
  stop(): void {
    this.#stopped = true
    for (const s of this.#streams) s.destroy()
    this.#streams.clear()
    this.#feed.end()
    void this.#entries?.return()
    void Promise.resolve(this.#source.return?.()).catch(() => {})
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  #room(file: TarFile): boolean {
    const n = this.#items.length
    if (n >= AHEAD_FILES) return false
    if (file.size !== undefined && file.size > SMALL) return true // not fetched ahead: costs nothing until its turn
    return n === 0 || this.#bytes + (file.size ?? PROBE) <= AHEAD_BYTES
  }

  #fill(): void {
    if (this.#pulling || this.#stopped) return
    this.#pulling = true
    void this.#pull()
  }

  async #pull(): Promise<void> {
    try {
      while (!this.#stopped) {
        if (this.#pending === null) {
          if (this.#ended) break
          const r = await this.#source.next()
          if (r.done) {
            this.#ended = true
            this.#feed.end()
            break
          }
          this.#pending = r.value
        }
        if (!this.#room(this.#pending!)) break
        this.#items.push(this.#start(this.#pending!))
        this.#pending = null
        this.#notify()
      }
    } catch (err) {
      this.#failure = { err }
      this.#ended = true
      this.#feed.end()
    } finally {
      this.#pulling = false
      this.#notify()
    }
  }

  #start(file: TarFile): Item {
    const item: Item = { file, reserved: 0, entry: null }
    if (file.size !== undefined && file.size > SMALL) return item
    item.reserved = file.size ?? PROBE
    this.#bytes += item.reserved
    item.entry = new Promise<BatchEntry>((resolve, reject) => this.#waiting.push({ item, resolve, reject }))
    item.entry.catch(() => {}) // surfaced when its turn comes
    this.#feed.push({ path: file.path, length: file.size === undefined ? PROBE : file.size + 1 })
    if (!this.#entries) void this.#take((this.#entries = this.#client.readEntries(this.#feed, { highWater: Infinity })))
    return item
  }

  /**
   * Hands each entry of the batches to the item waiting for it, which then
   * counts the bytes it holds rather than those it might have; a failure
   * goes to its item and every one after.
   */
  async #take(entries: AsyncGenerator<BatchEntry, void, void>): Promise<void> {
    try {
      for await (const e of entries) {
        const w = this.#waiting.shift()
        if (!w) continue
        if (w.item.reserved > 0) {
          this.#bytes += e.data.length - w.item.reserved
          w.item.reserved = e.data.length
          this.#fill()
        }
        w.resolve(e)
      }
    } catch (err) {
      for (const w of this.#waiting.splice(0)) w.reject(err as Error)
    }
  }
}

/** An async source fed by hand: what is pushed, in order, until end(). */
class Feed<T> implements AsyncIterable<T> {
  #items: T[] = []
  #ended = false
  #wake: (() => void) | null = null

  push(item: T): void {
    this.#items.push(item)
    this.#notify()
  }

  end(): void {
    this.#ended = true
    this.#notify()
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T, void, void> {
    for (;;) {
      if (this.#items.length > 0) yield this.#items.shift()!
      else if (this.#ended) return
      else await new Promise<void>((resolve) => (this.#wake = resolve))
    }
  }

  #notify(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }
}
