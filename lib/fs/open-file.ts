/**
 * An open regular file and the identity it had when opened (see identity.ts):
 * the identity keys the cache, so a file replaced or changed on disk never
 * hits blocks cached from its old contents. A file is handed out only once
 * its version has settled (see settle.ts), so its bytes are one version's.
 */
import { constants } from 'node:fs'
import { type FileHandle, open } from 'node:fs/promises'
import { error } from '../errors.js'
import { FdFile, type ReadableFile } from './fd-file.js'
import { type FileStat, identityOf } from './identity.js'
import { type Found, Jail } from './jail.js'
import type { Settle } from './settle.js'

export { identityOf }

export interface OpenFile {
  fh: ReadableFile
  /** Cache key of this version of the file. */
  key: string
  size: number
  mtimeMs: number
  /**
   * Where it is under the root, symlinks resolved (its real names joined by /): with its
   * identity, its key in the shared tier. Not the path asked for: a symlink switched to
   * another file of the same size and times must not name the first one's blocks.
   */
  name: string
}

/** Open the regular file a client path names, for reading; with `settle`, once its version has settled. */
export async function openFile(jail: Jail, path: unknown, settle?: Settle): Promise<OpenFile> {
  const { parts, dirOnly } = Jail.parse(path)
  const shown = Jail.shown(String(path))
  // A path with no symlink on it: one job on the thread pool (open-beneath.ts); anything else, the walk.
  const plain = dirOnly ? null : await jail.openPlain(parts)
  // A path with no symlink on it is its own real location.
  if (plain) return opened(new FdFile(plain.fd), plain.st, parts.join('/'), shown, settle)
  return openFound(await jail.lookupParts(parts, String(path), dirOnly), shown, settle)
}

/** Open the regular file at real names under the root (from a walk), for reading; `shown` names it in errors. */
export async function openFileAt(jail: Jail, names: readonly string[], shown: string, settle?: Settle): Promise<OpenFile> {
  const plain = await jail.openPlain(names)
  if (plain) return opened(new FdFile(plain.fd), plain.st, names.join('/'), shown, settle)
  return openFound(await jail.lookupParts(names, shown), shown, settle)
}

/**
 * Open what was found, for reading, only if it is a regular file: it is held
 * without being opened (O_PATH), so a FIFO or a device is refused untouched.
 * Opening its /proc/self/fd path opens that very inode, whatever its name
 * names now. The identity is the one fstat gave for that inode.
 */
async function openFound(found: Found, shown: string, settle?: Settle): Promise<OpenFile> {
  let fh: FileHandle
  const held = found.held
  try {
    const st = found.st
    if (st.isDirectory()) throw error('EISDIR', `${shown} is a directory; use ls to list it`)
    if (!st.isFile()) throw error('EACCES', `${shown} is not a regular file`)
    // Without /proc, `path` is a real path: O_NOFOLLOW and O_NONBLOCK, then check the type again.
    fh = await open(found.path, constants.O_RDONLY | (found.held ? 0 : constants.O_NOFOLLOW | constants.O_NONBLOCK)).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EACCES' || err.code === 'EPERM' ? error('EACCES', `permission denied: ${shown}`, err) : err
    })
  } finally {
    found.close()
  }
  // Reopened through /proc, the descriptor is the very inode found.st describes: no second
  // fstat. A real path (no /proc) may name another file by now: look again.
  return opened(fh, held ? found.st : null, found.names.join('/'), shown, settle)
}

/** An open file as OpenFile, once it is known to be a regular file (`st`: its fstat, or null to take one) and has settled. */
async function opened(fh: ReadableFile, known: FileStat | null, name: string, shown: string, settle?: Settle): Promise<OpenFile> {
  try {
    let st = known ?? (await fh.stat({ bigint: true }))
    if (!st.isFile()) throw error('EACCES', `${shown} is not a regular file`)
    if (settle) st = await settle.wait(fh, st, shown)
    return { fh, key: identityOf(st), size: Number(st.size), mtimeMs: Number(st.mtimeMs), name }
  } catch (err) {
    await fh.close()
    throw err
  }
}
