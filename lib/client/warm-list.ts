/**
 * `warm` of an explicit list of paths (an epoch's sample order, say): a
 * request per batch of paths, each well within the server's longest request
 * line, with progress and the result summed over the batches.
 */
import type { WarmResult } from './types.js'

/** Bytes of paths one `warm` request of a list carries (request lines are bounded: --max-request). */
const WARM_BATCH_BYTES = 32 * 1024

type WarmRequest = (args: { paths: string[] }, onProgress?: (progress: unknown) => void) => Promise<WarmResult>

/**
 * Warm `paths` in order with `request`, in batches sized for the server's
 * longest request line (`maxRequest()`: the current connection's); stops once
 * the cache is full. A path no batch can carry is skipped here, as ETOOBIG.
 */
export async function warmList(
  request: WarmRequest,
  maxRequest: () => number | undefined,
  paths: Iterable<string> | AsyncIterable<string>,
  onProgress?: (progress: WarmResult) => void,
): Promise<WarmResult> {
  const total: Required<WarmResult> = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, skipped: 0, skippedPaths: [] }
  const sum = (r: WarmResult): Required<WarmResult> => ({
    files: total.files + r.files,
    bytes: total.bytes + r.bytes,
    totalFiles: total.totalFiles + r.totalFiles,
    totalBytes: total.totalBytes + r.totalBytes,
    full: r.full,
    skipped: total.skipped + (r.skipped ?? 0),
    skippedPaths: [...total.skippedPaths, ...(r.skippedPaths ?? [])].slice(0, 20),
  })
  let batch: string[] = []
  let bytes = 0
  const send = async () => {
    const r = await request({ paths: batch }, onProgress && ((p) => onProgress(sum(p as WarmResult))))
    Object.assign(total, sum(r))
    batch = []
    bytes = 0
  }
  // Batches well within the server's longest request line (a path's JSON may be 6× its bytes: \u escapes).
  const limit = () => Math.min(WARM_BATCH_BYTES, Math.floor((maxRequest() ?? WARM_BATCH_BYTES * 2) / 2))
  for await (const path of paths) {
    if (total.full) break
    const size = Buffer.byteLength(JSON.stringify(path)) + 1
    if (size > limit()) {
      // Its request line would be refused (ETOOBIG), and the connection with it.
      Object.assign(total, sum({ files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, skipped: 1, skippedPaths: [{ path, code: 'ETOOBIG' }] }))
      continue
    }
    if (batch.length > 0 && bytes + size > limit()) await send()
    batch.push(path)
    bytes += size
  }
  if (batch.length > 0 && !total.full) await send()
  return total
}
