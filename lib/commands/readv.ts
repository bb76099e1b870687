/**
 * readv {paths}: START {files}, then one stream of DATA bytes holding an
 * entry per path, in order (lib/protocol/readv-entry.ts), then END {files,
 * length}. An entry is a header and the file's bytes (a range's, for a
 * `{path, offset, length}` item), or a header and an error's JSON for a path
 * that could not be read (missing, a directory, refused, ERANGE): one request
 * and one response for a whole list of small files, with no request line,
 * START or END per file.
 *
 * Each entry's bytes are of one version of its file, as a read's are. A file
 * that changes while its bytes are being sent fails the request (ECHANGED);
 * the entries before it were whole. A resend (after a NACK) serves the same
 * bytes again from the receiver's offset: what each entry was is kept in the
 * request's memo (its header, its file's identity, an error's body). The
 * next few files are loaded while one is sent (read-ahead.ts).
 */
import { toCacheservError } from '../errors.js'
import { MAX_READV_PATHS } from '../protocol/constants.js'
import { ENTRY_ERROR, ENTRY_FILE, ENTRY_HEADER, encodeEntryHeader } from '../protocol/readv-entry.js'
import type { Part } from '../stages/items.js'
import { pathItems, type Wanted } from './args.js'
import type { CommandContext, CommandIO } from './context.js'
import { ReadAhead } from './read-ahead.js'
import { serveRange } from './read.js'

/** What an entry was when it was first sent. */
interface SentEntry {
  header: Buffer
  /** A file entry's version. */
  identity?: string
  /** An error entry's body. */
  error?: Buffer
  /** Bytes of the entry, header included. */
  bytes: number
}

export async function* readv(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const wants = pathItems(args, MAX_READV_PATHS)
  const { resume } = io
  const memo = (io.memo ?? {}) as { entries?: SentEntry[] }
  const sent = (memo.entries ??= [])
  if (!resume || resume.seq === 0) yield { kind: 'start', body: { files: wants.length } }
  /** Where the receiver stands in the stream; entries before it are skipped. */
  const have = resume?.offset ?? 0
  let pos = 0
  // The next files load while this one is sent (read-ahead.ts).
  const ahead = new ReadAhead(ctx, wants)
  // An epoch's read-ahead (a warm list) passes over the files this request will read.
  const doneReading = ctx.files.reading(wants.map((w) => w.path))
  try {
    for (let i = 0; i < wants.length; i++) {
      const known = sent[i]
      if (known && pos + known.bytes <= have) {
        pos += known.bytes
        continue
      }
      ahead.at(i)
      // Every part of an entry ends its page (`flush`): joining one file's bytes with the next entry's would be a copy.
      yield* known ? again(known, wants[i], have - pos, ctx, io) : first(i, wants[i], sent, ctx, io)
      pos += sent[i].bytes
    }
  } finally {
    ahead.stop()
    doneReading()
  }
  yield { kind: 'end', body: { files: wants.length, length: pos } }
}

/** Entry `i` sent for the first time, and remembered. */
async function* first(i: number, want: Wanted, sent: SentEntry[], ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const offset = want.offset ?? 0
  let started = false
  try {
    yield* serveRange(ctx, io, { path: want.path, offset, length: want.length, skip: 0, flush: true }, (file, end) => {
      started = true
      const header = encodeEntryHeader({ index: i, kind: ENTRY_FILE, size: file.size, mtimeMs: file.mtimeMs, length: end - offset })
      sent[i] = { header, identity: file.key, bytes: ENTRY_HEADER + end - offset }
      return [{ kind: 'data', chunk: header, meta: true, flush: true }]
    })
  } catch (err) {
    // Once its header is out, the entry cannot turn into an error: the request fails.
    if (started || io.signal?.aborted) throw err
    const e = toCacheservError(err)
    const body = Buffer.from(JSON.stringify({ code: e.code, message: e.message }))
    const header = encodeEntryHeader({ index: i, kind: ENTRY_ERROR, size: 0, mtimeMs: 0, length: body.length })
    sent[i] = { header, error: body, bytes: ENTRY_HEADER + body.length }
    yield { kind: 'data', chunk: header, meta: true, flush: true }
    yield { kind: 'data', chunk: body, meta: true, flush: true }
  }
}

/** The rest of an entry sent before, from `skip` bytes into it: the same header, and the same version's bytes or the same error. */
async function* again(entry: SentEntry, want: Wanted, skip: number, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  if (skip < ENTRY_HEADER) yield { kind: 'data', chunk: entry.header.subarray(skip), meta: true, flush: true }
  const into = Math.max(0, skip - ENTRY_HEADER)
  if (entry.error) {
    if (into < entry.error.length) yield { kind: 'data', chunk: entry.error.subarray(into), meta: true, flush: true }
    return
  }
  yield* serveRange(ctx, io, { path: want.path, offset: want.offset ?? 0, length: want.length, skip: into, identity: entry.identity, flush: true }, () => [])
}
