/**
 * write {path, length?} + uploaded DATA frames + END: write the bytes to a
 * temporary file beside the target, fsync, and rename it over the target, so
 * a reader sees the old file or the new one, never half of one. Then drop
 * the old version from the cache (the new one has a new identity anyway).
 * Refused with EROFS unless the server is writable.
 */
import { type FileHandle, open, rename, unlink } from 'node:fs/promises'
import { error } from '../errors.js'
import { uploadTempName } from '../fs/upload-temp.js'
import { Jail } from '../fs/jail.js'
import { identityOf } from '../fs/open-file.js'
import { type ChecksumName, ChecksumId, FrameType } from '../protocol/constants.js'
import { describe } from '../protocol/request.js'
import type { Part } from '../stages/items.js'
import { optionalCount, requiredString } from './args.js'
import type { CommandContext, CommandIO } from './context.js'
import type { ReceivedFrame } from '../protocol/frame.js'

export async function* write(args: Record<string, unknown>, ctx: CommandContext, { input, signal }: CommandIO): AsyncGenerator<Part, void, void> {
  if (!ctx.writable) throw error('EROFS', 'this server is read-only; start it with --writable to allow write')
  const path = requiredString(args, 'path')
  const length = optionalCount(args, 'length')
  const { parts, dirOnly } = Jail.parse(path)
  const name = parts.pop()
  if (name === undefined) throw error('EISDIR', 'cannot write the root; name a file')
  const dirShown = parts.join('/')
  const dir = await ctx.jail.lookupParts(parts, dirShown || 'the root')
  let fh: FileHandle | null = null
  let tmp = ''
  let closed = false
  let renamed = false
  try {
    if (!dir.st.isDirectory()) throw error('ENOTDIR', `${dirShown} is not a directory`)
    // Create and rename through the held directory: its name may be swapped for a symlink meanwhile.
    const target = `${dir.path}/${name}`
    // What the name holds now, resolved by the jail: a symlink must stay inside the root
    // (a dangling one inside is simply replaced); a directory is not replaced.
    const before = await ctx.jail.lookupParts([...dir.names, name], path).then(
      (found) => {
        found.close()
        return found.st
      },
      (err: { code?: string }) => {
        if (err.code === 'ENOENT') return null
        throw err
      },
    )
    if (before?.isDirectory()) throw error('EISDIR', `${path} is a directory`)
    if (dirOnly) throw error(before ? 'ENOTDIR' : 'EISDIR', `${path} names a directory (it ends in /); name a file`)
    // Short, so that a target name of the longest allowed length still leaves room for it.
    tmp = `${dir.path}/${uploadTempName()}`
    fh = await open(tmp, 'wx', 0o644)
    const size = await receive(fh, input, length, ctx.checksum, signal)
    await fh.sync()
    await fh.close()
    closed = true
    // The last moment a cancel can take effect: past the rename the file is in place, and the
    // answer must say so (RESULT), whatever the client asked meanwhile.
    signal?.throwIfAborted()
    await rename(tmp, target)
    renamed = true
    if (before?.isFile()) ctx.cache.evictFile({ key: identityOf(before), size: Number(before.size) })
    yield { kind: 'result', body: { path, size } }
  } finally {
    if (fh && !closed) await fh.close().catch(() => {})
    if (fh && !renamed) await unlink(tmp).catch(() => {})
    dir.close()
  }
}

/** Copy uploaded frames into the file; returns the byte count once END confirms it. */
async function receive(
  fh: FileHandle,
  input: AsyncIterable<ReceivedFrame> | undefined,
  length: number | undefined,
  checksum: ChecksumName,
  signal?: AbortSignal,
): Promise<number> {
  if (!input) throw error('EINTERNAL', 'write needs uploaded frames')
  let written = 0
  let seq = 1
  for await (const frame of input) {
    // A frame without the server's checksum would be taken unchecked.
    if (frame.checksum !== ChecksumId[checksum]) throw error('ECHECKSUM', `uploaded frame ${frame.seq} carries checksum id ${frame.checksum}; uploads must use ${checksum}, as in HELLO`)
    if (!frame.intact) throw error('ECHECKSUM', `uploaded frame ${frame.seq} failed its checksum; send the write again`)
    if (frame.seq !== seq++) throw error('EBADREQ', `uploaded frames out of order: expected ${seq - 1}, got ${frame.seq}`)
    if (frame.type === FrameType.DATA) {
      written += frame.payload.length
      if (length !== undefined && written > length) throw error('EBADREQ', `more than the announced ${length} bytes`)
      let done = 0
      while (done < frame.payload.length) done += (await fh.write(frame.payload, done)).bytesWritten
    } else if (frame.type === FrameType.END) {
      let total: unknown
      try {
        total = (JSON.parse(frame.payload.toString('utf8')) as { length?: unknown }).length
      } catch {
        throw error('EBADREQ', 'END frame of an upload must carry JSON {"length": N}')
      }
      if (total !== written || (length !== undefined && length !== written)) {
        throw error('EBADREQ', `upload ended after ${written} bytes, but ${describe(total ?? length)} were announced`)
      }
      return written
    } else {
      throw error('EBADREQ', `unexpected frame type ${frame.type} in an upload`)
    }
  }
  signal?.throwIfAborted() // cancelled: the input was closed for that reason
  throw error('ECLOSED', 'the upload ended before its END frame; nothing was written')
}
