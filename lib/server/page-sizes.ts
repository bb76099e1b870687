/**
 * The page sizes a server is given, checked before it starts: the size of
 * the pages it sends, and the smallest NACKs may shrink them to.
 */
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MIN_PAGE_SIZE } from '../protocol/constants.js'
import type { ServerOptions } from './server-options.js'

/** The page size of `opts` (default 256 KiB); a RangeError when it, or the smallest page size, is out of bounds. */
export function checkedPageSize(opts: Pick<ServerOptions, 'pageSize' | 'minPageSize'>): number {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE
  if (!Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE) {
    throw new RangeError(`page size must be from ${MIN_PAGE_SIZE} to ${MAX_PAGE_SIZE} bytes, got ${pageSize}`)
  }
  const minPageSize = opts.minPageSize ?? MIN_PAGE_SIZE
  if (!Number.isInteger(minPageSize) || minPageSize < 1 || minPageSize > pageSize) {
    throw new RangeError(`smallest page size must be from 1 to the page size (${pageSize}), got ${minPageSize}`)
  }
  return pageSize
}
