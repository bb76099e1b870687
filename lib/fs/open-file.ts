/**
 * An open regular file and the identity it had when opened (see identity.ts):
 * the identity keys the cache, so a file replaced or changed on disk never
 * hits blocks cached from its old contents. A file is handed out only once
 * its version has settled (see settle.ts), so its bytes are one version's.
 */
import { constants } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import type { Jail } from './jail.js'
import { openInside } from './safe-open.js'
import { error } from '../errors.js'
import { identityOf } from './identity.js'
import type { Settle } from './settle.js'

export { identityOf }

export interface OpenFile {
  fh: FileHandle
  /** Cache key of this version of the file. */
  key: string
  size: number
  mtimeMs: number
}

// O_NONBLOCK: opening a FIFO must not hang a thread; it is refused below anyway.
const FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

/**
 * Open `real` (an absolute path inside the root) for reading; `shown` names
 * it in errors. With `settle`, waits until the file's version has settled.
 */
export async function openFile(jail: Jail, real: string, shown: string, settle?: Settle): Promise<OpenFile> {
  const fh = await openInside(jail, real, FLAGS, shown)
  try {
    let st = await fh.stat({ bigint: true })
    if (st.isDirectory()) throw error('EISDIR', `${shown} is a directory; use ls to list it`)
    if (!st.isFile()) throw error('EACCES', `${shown} is not a regular file`)
    if (settle) st = await settle.wait(fh, st, shown)
    return { fh, key: identityOf(st), size: Number(st.size), mtimeMs: Number(st.mtimeMs) }
  } catch (err) {
    await fh.close()
    throw err
  }
}

/** Re-read the identity of an open file: differs from `file.key` when it changed. */
export async function currentIdentity(file: OpenFile): Promise<string> {
  return identityOf(await file.fh.stat({ bigint: true }))
}
