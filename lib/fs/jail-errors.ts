/**
 * The jail's refusals, and fs errors met while resolving a path put in its
 * words: the client's path is named, never a path of the server's.
 */
import { CacheservError, error } from '../errors.js'

/** The path led out of the root. */
export function outside(shown: string) {
  return error('EACCES', `path ${JSON.stringify(shown)} refused: it resolves outside the root`)
}

/** The path must name a directory and does not. */
export function notDir(shown: string) {
  return error('ENOTDIR', `not a directory: ${shown}`)
}

/** An fs error met on the way, in the jail's words (no server path in the message). */
export function jailError(err: unknown, shown: string): unknown {
  if (err instanceof CacheservError) return err
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOENT') return error('ENOENT', `no such file or directory: ${shown}`)
  if (code === 'ENOTDIR') return error('ENOTDIR', `not a directory on the way to: ${shown}`)
  if (code === 'ELOOP') return error('EACCES', `path refused: symlinks loop on the way to ${shown}`)
  if (code === 'ENAMETOOLONG') return error('EACCES', `path refused: it resolves to a name too long`)
  if (code === 'EACCES' || code === 'EPERM') return error('EACCES', `permission denied on the way to: ${shown}`)
  return err
}
