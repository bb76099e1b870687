/**
 * `tree` from the client's side: the files under a path, either in one
 * streamed response, asked for again after the last file given when its
 * connection dies, or a page of files per round trip, following the
 * server's cursor.
 */
import createDebug from '../debug.js'
import { setTimeout as sleep } from 'node:timers/promises'
import { error } from '../errors.js'
import type { Connections } from './connections.js'
import { isRetryable, request, streamRequest } from './requests.js'
import { treeFiles } from './tree-stream.js'
import type { TreeFile } from './types.js'

const debug = createDebug('cacheserv:client')

/**
 * The files of one streamed tree. A connection that dies under it is asked
 * again, after the next retry delay, for the files after the last one
 * given; an attempt that gave files starts the count of delays again.
 */
export async function* streamedTree(conns: Connections, path: string, suffix: string | undefined): AsyncGenerator<TreeFile, void, void> {
  const delays = conns.retryDelays
  let after: string | null = null
  for (let attempt = 0; ; ) {
    const args: Record<string, unknown> = { path, stream: true }
    if (suffix) args.suffix = suffix
    if (after !== null) args.after = after
    const from: string | null = after
    try {
      for await (const f of treeFiles((sink) => streamRequest(conns, 'tree', args, sink))) {
        after = f.path
        yield f
      }
      return
    } catch (err) {
      if (after !== from) attempt = 0
      if (attempt >= delays.length || !isRetryable(err as Error)) throw err
      debug('tree %s failed (%s): again in %d ms after %s', path, (err as Error).message, delays[attempt], after)
      await sleep(delays[attempt++])
      if (conns.closed) throw conns.closed
    }
  }
}

/** The files of a tree, `pageSize` per request (each one repeatable on its own), until the server's cursor runs out. */
export async function* pagedTree(conns: Connections, path: string, suffix: string | undefined, pageSize: number): AsyncGenerator<TreeFile, void, void> {
  let after: string | null = null
  do {
    const args: Record<string, unknown> = { path, limit: pageSize }
    if (suffix) args.suffix = suffix
    if (after !== null) args.after = after
    const page = await request<{ files?: unknown; next?: unknown } | null>(conns, 'tree', args)
    if (!Array.isArray(page?.files) || !(page.next === null || typeof page.next === 'string')) throw error('EPROTO', 'tree result without a files list and a next cursor')
    yield* page.files as TreeFile[]
    after = page.next
  } while (after !== null)
}
