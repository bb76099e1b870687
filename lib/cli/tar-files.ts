/**
 * The files `tar` archives, in order, as they become known: a tree on the
 * server (listed by `tree`, a page at a time), or the paths listed in a file or
 * on stdin (read line by line, so the archive starts with the first path).
 * Loaded by `tar` only.
 */
import type { Client } from '../client/client.js'
import { readPathList } from './path-list.js'
import type { TarFile } from './tar.js'

export function tarFiles(client: Client, dir: string, list: string | undefined): AsyncIterable<TarFile> {
  return list === undefined ? client.tree(dir.replace(/^\/+|\/+$/g, '')) : listed(list)
}

/**
 * Paths listed one a line. Their sizes are not asked for: each read's START
 * says it. Not a generator, so that tar giving up while it waits for the
 * next path lets go of the list at once (see ./path-list.js).
 */
function listed(list: string): AsyncIterableIterator<TarFile> {
  const paths = readPathList(list)
  return {
    [Symbol.asyncIterator]() {
      return this
    },
    async next() {
      const r = await paths.next()
      return r.done ? r : { done: false, value: { path: r.value } }
    },
    async return() {
      await paths.return?.()
      return { done: true, value: undefined }
    },
  }
}
