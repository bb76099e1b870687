/**
 * Resolve client paths inside the served root. A path is relative to the root,
 * '/'-separated; absolute paths, '..' segments, NUL bytes and backslashes are
 * refused, and so is a symlink whose target lies outside the root.
 */
import { realpath, stat } from 'node:fs/promises'
import { sep } from 'node:path'
import { error } from '../errors.js'

const MAX_PATH = 4096
/** Longest name of one path segment, in bytes (NAME_MAX on Linux). */
const MAX_NAME = 255

export class Jail {
  readonly root: string

  private constructor(root: string) {
    this.root = root
  }

  /** The root itself must exist and is resolved once, so symlinked roots work. */
  static async open(root: string): Promise<Jail> {
    const real = await realpath(root)
    if (!(await stat(real)).isDirectory()) throw Object.assign(new Error(`root ${root} is not a directory`), { code: 'ENOTDIR' })
    return new Jail(real)
  }

  /** How a client path is named in messages: the root has no name of its own. */
  static shown(path: string): string {
    return Jail.segments(path).length === 0 ? 'the root' : path
  }

  /** Check a client path's shape and return its segments (empty for the root). */
  static segments(path: unknown): string[] {
    if (typeof path !== 'string') throw error('EBADREQ', 'path must be a string')
    if (Buffer.byteLength(path) > MAX_PATH) throw error('EACCES', `path refused: longer than ${MAX_PATH} bytes`)
    if (path.includes('\0')) throw error('EACCES', 'path contains a NUL byte')
    if (path.includes('\\')) throw error('EACCES', 'path contains a backslash; use / to separate segments')
    if (path.startsWith('/')) throw error('EACCES', `absolute path ${JSON.stringify(path)} refused: paths are relative to the root`)
    const parts = path.split('/').filter((p) => p !== '' && p !== '.')
    if (parts.includes('..')) throw error('EACCES', `path ${JSON.stringify(path)} refused: '..' may not leave the root`)
    if (parts.some((p) => Buffer.byteLength(p) > MAX_NAME)) throw error('EACCES', `path refused: a name is longer than ${MAX_NAME} bytes`)
    return parts
  }

  /** The segments of a checked client path under the root, unresolved (symlinks not followed). */
  under(parts: readonly string[]): string {
    return parts.length === 0 ? this.root : this.root + sep + parts.join(sep)
  }

  /** Absolute real path of a client path, guaranteed inside the root. */
  async resolve(path: unknown): Promise<string> {
    const joined = this.under(Jail.segments(path))
    let real: string
    try {
      real = await realpath(joined)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') throw error('ENOENT', `no such file or directory: ${String(path)}`)
      if (code === 'ENOTDIR') throw error('ENOTDIR', `not a directory on the way to: ${String(path)}`)
      if (code === 'ELOOP') throw error('EACCES', `path refused: symlinks loop on the way to ${String(path)}`)
      if (code === 'ENAMETOOLONG') throw error('EACCES', `path refused: it resolves to a name too long`)
      throw err
    }
    if (!this.contains(real)) throw error('EACCES', `path ${JSON.stringify(path)} refused: it resolves outside the root`)
    return real
  }

  contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root === sep ? sep : this.root + sep)
  }
}
