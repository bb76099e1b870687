/**
 * Open what a checked path names, then check what was opened. Between the
 * realpath check and the open, a path component could be swapped for a
 * symlink leading out of the root; O_NOFOLLOW covers the last component, and
 * on Linux /proc/self/fd/N says where the opened descriptor really points.
 * Directory operations then go through that descriptor's /proc path, so they
 * act on the directory that was checked, whatever happens to its name.
 */
import { constants } from 'node:fs'
import { type FileHandle, lstat, open, readlink } from 'node:fs/promises'
import { error } from '../errors.js'
import type { Jail } from './jail.js'

const hasProcFd = process.platform === 'linux'

/** Open `real` (already resolved inside the root) with O_NOFOLLOW, and refuse it if it now lies outside. */
export async function openInside(jail: Jail, real: string, flags: number, shown: string): Promise<FileHandle> {
  const fh = await open(real, flags | constants.O_NOFOLLOW).catch(async (err: NodeJS.ErrnoException) => {
    // O_NOFOLLOW met a symlink where the checked path had none (ELOOP; ENOTDIR with O_DIRECTORY):
    // it was swapped meanwhile.
    const swapped = err.code === 'ELOOP' || (err.code === 'ENOTDIR' && (await lstat(real).catch(() => null))?.isSymbolicLink())
    throw swapped ? error('EACCES', `${shown} refused: it changed into a symlink`) : err
  })
  try {
    const where = await openedPath(fh)
    if (where !== null && !jail.contains(where.replace(/ \(deleted\)$/, ''))) {
      throw error('EACCES', `${shown} refused: it resolves outside the root`)
    }
    return fh
  } catch (err) {
    await fh.close()
    throw err
  }
}

/** Open a directory inside the root (see openInside). */
export function openDirInside(jail: Jail, real: string, shown: string): Promise<FileHandle> {
  return openInside(jail, real, constants.O_RDONLY | constants.O_DIRECTORY, shown)
}

/** A path that names this open directory itself (Linux), or `fallback` where there is no /proc. */
export function dirPath(fh: FileHandle, fallback: string): string {
  return hasProcFd ? `/proc/self/fd/${fh.fd}` : fallback
}

async function openedPath(fh: FileHandle): Promise<string | null> {
  if (!hasProcFd) return null
  try {
    return await readlink(`/proc/self/fd/${fh.fd}`)
  } catch {
    return null // no /proc mounted: the realpath check stands alone
  }
}
