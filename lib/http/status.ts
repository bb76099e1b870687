/** The error vocabulary mapped onto HTTP status codes; the code itself goes in a header and the body. */
import type { ErrorCode } from '../errors.js'

const STATUS: Partial<Record<ErrorCode, number>> = {
  EBADREQ: 400,
  EAUTH: 401,
  EACCES: 403,
  ENOENT: 404,
  ENOTDIR: 404,
  ETOOBIG: 413,
  ERANGE: 416,
  EROFS: 405,
  EBUSY: 503,
  ESHUTDOWN: 503,
  EMFILE: 503,
  ECHANGED: 503,
  ETIMEDOUT: 408,
}

export function statusOf(code: ErrorCode): number {
  return STATUS[code] ?? 500
}

/** Worth trying again soon: answered with Retry-After. */
export function isTransient(code: ErrorCode): boolean {
  return code === 'EBUSY' || code === 'EMFILE' || code === 'ECHANGED' || code === 'ESHUTDOWN'
}

/** The header that carries the error code. */
export const ERROR_HEADER = 'x-cacheserv-error'
