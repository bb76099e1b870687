/**
 * The temporary files a `write` fills before renaming them over the target:
 * `.<host>.<pid>.<12 hex>.cacheserv-tmp` beside the target. They are never
 * listed or served, not even through a symlink. One left by a server of
 * this host that died mid-upload (its pid no longer runs) is removed when a
 * writable server starts on the root; the host's name keeps servers of other
 * hosts sharing the root (NFS) from taking each other's for dead.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { readdir, unlink } from 'node:fs/promises'
import createDebug from '../debug.js'
import type { Found, Jail } from './jail.js'

const debug = createDebug('cacheserv:upload-temp')

const PATTERN = /^\.(?:(.+)\.)?(\d+)\.[0-9a-f]{12}\.cacheserv-tmp$/

/** This host's name as it may stand in a file name. */
const HOST = hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'localhost'

/** A fresh temporary name for an upload by this process. */
export function uploadTempName(): string {
  return `.${HOST}.${process.pid}.${randomBytes(6).toString('hex')}.cacheserv-tmp`
}

/** The name is an upload's temporary file (hidden from ls, walks and tar). */
export function isUploadTemp(name: string): boolean {
  return PATTERN.test(name)
}

/** Whether the process that made this temporary file has died (it can no longer finish it). */
function orphaned(name: string): boolean {
  const m = PATTERN.exec(name)
  if (!m || m[1] !== HOST) return false // another host's (or an older name): not ours to judge
  const pid = Number(m[2])
  if (!pid || pid === process.pid) return false
  try {
    process.kill(pid, 0)
    return false
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH'
  }
}

/**
 * Remove the temporary files of uploads whose server died, in every
 * directory under the root (symlinks are not followed). Returns how many
 * were removed. `signal` stops it before the next directory.
 */
export async function removeOrphanedUploads(jail: Jail, signal?: AbortSignal): Promise<number> {
  let removed = 0
  const pending: Found[] = [await jail.lookupParts([], 'the root')]
  try {
    while (pending.length > 0 && !signal?.aborted) {
      const dir = pending.pop()!
      try {
        for (const d of await readdir(dir.path, { withFileTypes: true }).catch(() => [])) {
          if (d.isDirectory()) {
            const sub = await jail.subdir(dir, d.name, d.name).catch(() => null)
            if (sub) pending.push(sub)
          } else if (d.isFile() && isUploadTemp(d.name) && orphaned(d.name)) {
            await unlink(`${dir.path}/${d.name}`).then(() => removed++, () => {})
          }
        }
      } finally {
        dir.close()
      }
    }
  } finally {
    for (const dir of pending) dir.close()
  }
  if (removed > 0) debug('removed %d temporary files of uploads whose server died', removed)
  return removed
}
