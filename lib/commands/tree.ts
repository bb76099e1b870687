/**
 * tree {path?, suffix?, after?, limit?, stream?}: every regular file under a
 * directory (or the file itself), depth first in name order, with its size.
 * Paths are relative to the root as the walk reached them (through symlinks
 * that stay inside the root); `suffix` keeps only names ending with it;
 * `after` starts after that path (a cursor).
 *
 * With `stream`, the whole list in one response: START {}, DATA holding a
 * JSON object per file, each on its own line ({"path":…,"size":…}\n), and
 * END {files, bytes, length}, so the first files reach the client while the
 * walk goes on. Otherwise pages: RESULT {files, next}, at most `limit` files
 * (default 10,000, at most 100,000), `next` the cursor of the next page or
 * null after the last. Listings come from the metadata cache when it holds
 * them.
 *
 * A page or a stream is read from the tree as it is while it is being made;
 * each path is listed at most once, in order. A resend (after a NACK) walks
 * again and must make the same bytes: each 64 KiB cut of the stream is
 * remembered by its crc32, and one that differs (the tree changed) fails the
 * request with ECHANGED rather than splice two listings.
 */
import { error } from '../errors.js'
import { sizeOf } from '../fs/listing.js'
import { plainLister } from '../fs/meta-cache.js'
import { type Run, walk, walkRuns } from '../fs/walk.js'
import { crc32 } from '../protocol/crc32.js'
import type { Part } from '../stages/items.js'
import { optionalCount, optionalFlag, optionalString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

export const DEFAULT_TREE_PAGE = 10_000
export const MAX_TREE_PAGE = 100_000
/** Bytes of listing a stream sends at a time. */
const STREAM_CUT = 64 * 1024

export interface TreeFile {
  path: string
  size: number
}

export async function* tree(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO = {}): AsyncGenerator<Part, void, void> {
  const path = optionalString(args, 'path', '')
  const suffix = optionalString(args, 'suffix', '')
  const after = args.after === undefined || args.after === null ? undefined : optionalString(args, 'after', '')
  if (optionalFlag(args, 'stream')) {
    if (args.limit !== undefined) throw error('EBADREQ', 'limit is for pages: a stream lists every file')
    return yield* streamed(path, suffix, after, ctx, io)
  }
  const limit = optionalCount(args, 'limit') ?? DEFAULT_TREE_PAGE
  if (limit < 1 || limit > MAX_TREE_PAGE) throw error('EBADREQ', `limit must be 1 to ${MAX_TREE_PAGE}, got ${limit}`)
  const files: TreeFile[] = []
  let next: string | null = null
  for await (const f of walk(ctx.jail, path, io.signal, after, ctx.meta)) {
    if (suffix !== '' && !f.rel.endsWith(suffix)) continue
    if (files.length === limit) {
      // One more exists: the page ends at the last one listed.
      next = files[files.length - 1].path
      break
    }
    files.push({ path: f.rel, size: f.size })
  }
  ctx.listings?.page(path, after, next, files.reduce((n, f) => n + f.size, 0))
  yield { kind: 'result', body: { files, next } }
}

async function* streamed(path: string, suffix: string, after: string | undefined, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const { resume } = io
  const memo = (io.memo ?? {}) as { cuts?: number[] }
  /** crc32 of each cut as first sent. */
  const cuts = (memo.cuts ??= [])
  if (!resume || resume.seq === 0) yield { kind: 'start', body: {} }
  /** Where the receiver stands: bytes before it are made again (to check them) but not sent. */
  const have = resume?.offset ?? 0
  const lister = ctx.meta ?? plainLister
  const stream = new ByteCuts()
  let pos = 0
  let files = 0
  let bytes = 0
  const send = function* (chunks: Buffer[]): Generator<Part, void, void> {
    for (const chunk of chunks) {
      const index = stream.count++
      const sum = crc32(chunk)
      if (cuts[index] === undefined) cuts[index] = sum
      else if (cuts[index] !== sum) throw error('ECHANGED', `${path || 'the root'} changed while its listing was sent again; ask for it again`)
      if (pos + chunk.length > have) yield { kind: 'data', chunk: pos >= have ? chunk : chunk.subarray(have - pos) }
      pos += chunk.length
    }
  }
  for await (const run of walkRuns(ctx.jail, path, io.signal, after, ctx.meta)) {
    if ('file' in run) {
      if (suffix !== '' && !run.file.rel.endsWith(suffix)) continue
      yield* send(stream.add(Buffer.from(`{"path":${JSON.stringify(run.file.rel)},"size":${run.file.size}}\n`)))
      files++
      bytes += run.file.size
      continue
    }
    // A held directory's lines are made once, and sent again as they are.
    const lines = lister.memo(run.listing, `${run.from}:${run.to}:${suffix}:${run.dir}`, () => linesOf(run, suffix), (l) => l.data.length + 64)
    yield* send(stream.add(lines.data))
    files += lines.files
    bytes += lines.bytes
  }
  yield* send(stream.end())
  // A walk made again that ends sooner than the stream first sent cannot be the same stream.
  if (stream.count < cuts.length) throw error('ECHANGED', `${path || 'the root'} changed while its listing was sent again; ask for it again`)
  ctx.listings?.page(path, after, null, bytes)
  yield { kind: 'end', body: { files, bytes, length: pos } }
}

/** The lines of a run's files, with how many there are and the sum of their sizes. */
function linesOf(run: Extract<Run, { listing: unknown }>, suffix: string): { data: Buffer; files: number; bytes: number } {
  const { listing, dir } = run
  /** A suffix with a '/' in it may reach into the directory's part of the path. */
  const wholePath = suffix.includes('/')
  // The directory's part of each line, escaped once for all its files.
  const head = dir === '' ? '{"path":"' : `{"path":"${inner(dir)}/`
  let text = ''
  let files = 0
  let bytes = 0
  for (let i = run.from; i < run.to; i++) {
    const name = listing.names[i]
    if (suffix !== '' && !(wholePath ? `${dir}/${name}` : name).endsWith(suffix)) continue
    const size = sizeOf(listing, i)
    text += `${head}${inner(name)}","size":${size}}\n`
    files++
    bytes += size
  }
  return { data: Buffer.from(text), files, bytes }
}

/** Characters JSON must escape inside a string. */
const ESCAPED = /["\\\u0000-\u001f]/

/** `s` as it reads between the quotes of a JSON string. */
function inner(s: string): string {
  return ESCAPED.test(s) ? JSON.stringify(s).slice(1, -1) : s
}

/**
 * The stream cut every STREAM_CUT bytes, wherever that falls (a line may run
 * across two cuts): where a cut ends depends only on the bytes, so a walk
 * made again cuts its stream the same way.
 */
class ByteCuts {
  /** Cuts made so far. */
  count = 0
  #parts: Buffer[] = []
  #held = 0

  /** Add `data`; the whole cuts there are now. */
  add(data: Buffer): Buffer[] {
    const out: Buffer[] = []
    let at = 0
    while (this.#held + data.length - at >= STREAM_CUT) {
      const take = STREAM_CUT - this.#held
      const piece = data.subarray(at, at + take)
      at += take
      out.push(this.#parts.length === 0 ? piece : Buffer.concat([...this.#parts, piece]))
      this.#parts = []
      this.#held = 0
    }
    if (at < data.length) {
      this.#parts.push(data.subarray(at))
      this.#held += data.length - at
    }
    return out
  }

  /** What is left: the last, shorter cut. */
  end(): Buffer[] {
    if (this.#held === 0) return []
    const last = this.#parts.length === 1 ? this.#parts[0] : Buffer.concat(this.#parts)
    this.#parts = []
    this.#held = 0
    return [last]
  }
}
