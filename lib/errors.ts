/**
 * One error vocabulary for the wire and for JavaScript: every error that
 * leaves a module carries a stable `code` from this table.
 */
export const ErrorCodes = {
  EBADREQ: 'the request is malformed: bad JSON, unknown command, or a missing or invalid argument',
  ETOOBIG: 'a request line or a response is larger than the protocol allows',
  ENOENT: 'no such file or directory under the root',
  ENOTDIR: 'a path component is not a directory',
  EISDIR: 'the path is a directory where a file was expected',
  EACCES: 'the path is outside the served root, or permission was denied',
  ERANGE: 'the requested offset lies beyond the end of the file',
  ENOSPC: 'pinning would take more of the cache than it can give (its size, less room for one more block)',
  EIO: 'the disk failed to deliver or to store the bytes (also a full disk or quota on write)',
  EMFILE: 'the server ran out of file descriptors',
  ECHANGED: 'the file changed on disk while it was being read',
  ECANCELED: 'the request was cancelled by the client',
  EROFS: 'the server is read-only: write needs a server started with --writable',
  EAUTH: 'the server needs a token (--token or CACHESERV_TOKEN) and did not get the right one',
  EBUSY: 'the server has as many connections as it allows; try again later',
  ESHUTDOWN: 'the server is shutting down and takes no new requests',
  ECHECKSUM: 'a page failed its checksum',
  ECORRUPT: 'pages kept arriving corrupt after repeated resends at the smallest page size; the transfer gave up',
  EPROTO: 'the byte stream broke the protocol and cannot be trusted',
  ECLOSED: 'the connection closed before the request completed',
  ECONNECT: 'could not connect to the server',
  ETIMEDOUT: 'a deadline passed: the server stopped answering while requests were waiting, or (from the server) the client was too slow sending a request or taking answers',
  EINTERNAL: 'the server hit a bug; the request failed but the server keeps serving',
} as const

export type ErrorCode = keyof typeof ErrorCodes

export class CacheservError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'CacheservError'
    this.code = code
  }
}

/** Build an error with a stable code: the one way errors are made here. */
export function error(code: ErrorCode, message: string, cause?: unknown): CacheservError {
  return new CacheservError(code, message, cause === undefined ? undefined : { cause })
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ErrorCodes, code)
}

/**
 * Map any thrown value onto the vocabulary: our own errors pass through, Node's
 * fs errors keep their code when it is one of ours (ENOENT, EISDIR, EMFILE…),
 * anything else is EINTERNAL so that a bug fails one request, not the server.
 */
export function toCacheservError(err: unknown): CacheservError {
  if (err instanceof CacheservError) return err
  const code = (err as { code?: unknown } | null)?.code
  const message = err instanceof Error ? err.message : String(err)
  // ENXIO: opening a unix socket (or a device without its driver): not a file we can serve.
  if (code === 'EPERM' || code === 'ENXIO') return error('EACCES', message, err)
  // The disk's failures that are not bugs: a full disk or quota, a file too big, a stale NFS handle.
  if (code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG' || code === 'ESTALE') return error('EIO', message, err)
  if (code === 'ENFILE') return error('EMFILE', message, err)
  if (isErrorCode(code)) return error(code, message, err)
  return error('EINTERNAL', message, err)
}
