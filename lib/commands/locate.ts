/**
 * locate {paths, release?}: RESULT {lease, ttl, dir, slabs, files}. For a client on the
 * server's host: where each file's blocks are in the shared-memory store, so
 * the client reads them itself (a short-circuit read). The blocks are loaded
 * if they are not cached, and held under one grant until the client releases
 * it (`release`, or `release` in its next `locate`), its connection ends, or
 * `ttl` ms pass; until then no slot of them is reused. A file whose blocks
 * are not all in the store, or that would take the grant past the
 * connection's bound, has `blocks: null`: read it over the socket.
 *
 * release {lease}: RESULT {released}. Lets a grant go early.
 */
import type { Releasable } from '../cache/block-lease.js'
import { error, toCacheservError } from '../errors.js'
import type { KnownFile } from '../fs/known-files.js'
import { openFile } from '../fs/open-file.js'
import { MAX_LOCATE_PATHS } from '../protocol/constants.js'
import type { Part } from '../stages/items.js'
import { optionalCount } from './args.js'
import type { CommandContext, CommandIO } from './context.js'

/** [slab (an index into the answer's `slabs`), offset in it, length, crc32]. */
type LocatedBlock = [number, number, number, number]

type Entry = { path: string; size: number; blocks: LocatedBlock[] | null } | { path: string; code: string; message: string }

/** Slab files named in one answer, each once. */
class Slabs {
  readonly names: string[] = []
  #index = new Map<string, number>()

  of(path: string): number {
    let i = this.#index.get(path)
    if (i === undefined) {
      i = this.names.push(path.slice(path.lastIndexOf('/') + 1)) - 1
      this.#index.set(path, i)
    }
    return i
  }
}

export async function* locate(args: Record<string, unknown>, ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const grants = io.grants
  if (!grants) throw error('EACCES', 'locate is for clients on the server\'s host, of a server whose cache is in shared memory (HELLO "shm")')
  const paths = args.paths
  if (!Array.isArray(paths) || paths.length === 0 || paths.length > MAX_LOCATE_PATHS || !paths.every((p) => typeof p === 'string')) {
    throw error('EBADREQ', `"paths" must be a list of 1 to ${MAX_LOCATE_PATHS} strings`)
  }
  const release = args.release ?? []
  if (!Array.isArray(release) || !release.every((id) => Number.isSafeInteger(id))) throw error('EBADREQ', '"release" must be a list of lease numbers')
  for (const id of release) grants.release(id as number)

  const held: Releasable[] = []
  let bytes = 0
  const files: Entry[] = []
  const slabs = new Slabs()
  try {
    for (const path of paths as string[]) {
      io.signal?.throwIfAborted()
      try {
        const { entry, leases, size } = await locateFile(path, ctx, io, grants.room - bytes, slabs)
        held.push(...leases)
        bytes += size
        files.push(entry)
      } catch (err) {
        if (io.signal?.aborted) throw err
        const e = toCacheservError(err)
        files.push({ path, code: e.code, message: e.message })
      }
    }
  } catch (err) {
    for (const lease of held) lease.release()
    throw err
  }
  const lease = held.length > 0 ? grants.grant(held, bytes) : null
  yield { kind: 'result', body: { lease, ttl: grants.ttl, dir: ctx.cache.storeDir, slabs: slabs.names, files } }
}

export async function* releaseGrant(args: Record<string, unknown>, _ctx: CommandContext, io: CommandIO): AsyncGenerator<Part, void, void> {
  const id = optionalCount(args, 'lease')
  if (id === undefined) throw error('EBADREQ', 'missing "lease" argument')
  yield { kind: 'result', body: { released: io.grants?.release(id) ?? false } }
}

/** One file's blocks, leased; `blocks: null` (nothing leased) when they cannot all be read from the store within `room` bytes. */
async function locateFile(path: string, ctx: CommandContext, io: CommandIO, room: number, slabs: Slabs): Promise<{ entry: Entry; leases: Releasable[]; size: number }> {
  const bs = ctx.cache.blockSize
  const leases: Releasable[] = []
  const lease = (file: KnownFile, index: number, block: Buffer) => {
    const l = ctx.cache.lease(file, index, block)
    io.hold?.(l)
    leases.push(l)
    return block
  }
  const viaSocket = (file: KnownFile) => {
    for (const l of leases) l.release()
    return { entry: { path, size: file.size, blocks: null }, leases: [], size: 0 }
  }
  // A file read moments ago whose blocks are all cached: no open (see KnownFiles).
  let file: KnownFile | null = ctx.files.current(path)
  let blocks: Buffer[] | null = null
  if (file) {
    if (file.size > room) return viaSocket(file)
    blocks = file.size === 0 ? [] : ctx.cache.cachedBlocks(file, 0, Math.ceil(file.size / bs) - 1)
    if (blocks) blocks.forEach((b, i) => lease(file!, i, b))
  }
  if (!blocks) {
    const opened = await openFile(ctx.jail, path, ctx.settle)
    try {
      file = opened
      if (opened.size > room) return viaSocket(opened)
      blocks = []
      for (let i = 0; i * bs < opened.size; i++) {
        // Leased as soon as it is there: it cannot be recycled while the next one loads.
        blocks.push(lease(opened, i, await ctx.cache.block(opened, i, { signal: io.signal, later: io.backedUp })))
      }
      ctx.files.remember(path, opened)
      ctx.pins.refresh(path, opened.key)
    } catch (err) {
      for (const l of leases) l.release()
      throw err
    } finally {
      await opened.fh.close()
    }
  }
  const located: LocatedBlock[] = []
  for (const block of blocks) {
    const at = ctx.cache.location(block)
    if (!at) return viaSocket(file!)
    located.push([slabs.of(at.file), at.offset, block.length, at.crc])
  }
  return { entry: { path, size: file!.size, blocks: located }, leases, size: file!.size }
}
