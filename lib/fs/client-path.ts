/**
 * The shape of a client path, checked before anything is looked up: relative
 * to the root, '/'-separated, no '..', NUL byte or backslash, within Linux's
 * length limits, and never naming an upload's temporary file.
 */
import { error } from '../errors.js'
import { isUploadTemp } from './upload-temp.js'

const MAX_PATH = 4096
/** Longest name of one path segment, in bytes (NAME_MAX on Linux). */
const MAX_NAME = 255

/** A checked client path: its segments, and whether it must name a directory (a trailing '/' or '/.'). */
export interface ClientPath {
  parts: string[]
  dirOnly: boolean
}

/**
 * Check a client path's shape: its segments, empty and '.' ones dropped,
 * and whether it ends in '/' or '/.' (then it must name a directory).
 */
export function parseClientPath(path: unknown): ClientPath {
  if (typeof path !== 'string') throw error('EBADREQ', 'path must be a string')
  if (Buffer.byteLength(path) > MAX_PATH) throw error('EACCES', `path refused: longer than ${MAX_PATH} bytes`)
  if (path.includes('\0')) throw error('EACCES', 'path contains a NUL byte')
  if (path.includes('\\')) throw error('EACCES', 'path contains a backslash; use / to separate segments')
  if (path.startsWith('/')) throw error('EACCES', `absolute path ${JSON.stringify(path)} refused: paths are relative to the root`)
  const all = path.split('/')
  const parts = all.filter((p) => p !== '' && p !== '.')
  if (parts.includes('..')) throw error('EACCES', `path ${JSON.stringify(path)} refused: '..' may not leave the root`)
  if (parts.some((p) => Buffer.byteLength(p) > MAX_NAME)) throw error('EACCES', `path refused: a name is longer than ${MAX_NAME} bytes`)
  // An upload's temporary file is not a file of the tree: never served, listed or written.
  if (parts.some(isUploadTemp)) throw error('ENOENT', `no such file or directory: ${path}`)
  const tail = all[all.length - 1]
  return { parts, dirOnly: all.length > 1 && (tail === '' || tail === '.') }
}
