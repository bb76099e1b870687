/**
 * The Range header (RFC 9110 §14), for one representation of `size` bytes.
 * One range is served as 206; several, or a header we cannot read, are
 * answered with the whole file, which RFC 9110 allows (a server may ignore
 * Range), so no multipart body is ever built.
 */
export type RangeChoice =
  /** Send everything (no Range, another unit, several ranges, bad syntax). */
  | { kind: 'whole' }
  /** Bytes `start`..`end` (end exclusive), as 206. */
  | { kind: 'part'; start: number; end: number }
  /** 416 with `Content-Range: bytes *\/size`. */
  | { kind: 'unsatisfiable' }

const WHOLE: RangeChoice = { kind: 'whole' }
const SPEC = /^(\d*)-(\d*)$/

export function chooseRange(header: string | undefined, size: number): RangeChoice {
  if (header === undefined) return WHOLE
  const eq = header.indexOf('=')
  if (eq < 0 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return WHOLE
  const specs = header.slice(eq + 1).split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (specs.length !== 1) return WHOLE
  const m = SPEC.exec(specs[0])
  if (!m || (m[1] === '' && m[2] === '')) return WHOLE
  // Digits only, so Number() is exact up to 2^53; a larger number is past any file anyway.
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' }
    return { kind: 'part', start: Math.max(0, size - suffix), end: size }
  }
  const start = Number(m[1])
  const last = m[2] === '' ? Infinity : Number(m[2])
  if (last < start) return WHOLE // invalid: RFC 9110 says ignore it
  if (start >= size) return { kind: 'unsatisfiable' }
  return { kind: 'part', start, end: Math.min(size, last + 1) }
}
