/**
 * The blocks of a POSIX (pax/ustar) tar stream that `tar` writes: member
 * headers, padding, the end-of-archive blocks, and the mark that a stream was
 * cut short. Written here rather than by a packer so that `tar` decides
 * exactly where a failed stream ends (see writeTar).
 */
import { error } from '../errors.js'

export const BLOCK = 512
/** Two zero blocks end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK)

/** ustar's size and mtime fields hold 11 octal digits. */
const MAX_OCTAL = 8 ** 11 - 1

export interface MemberHeader {
  name: string
  size: number
  /** Milliseconds since the epoch; the header holds whole seconds. */
  mtimeMs: number
  mode?: number
}

/** The header block(s) of a regular file: one ustar block, preceded by a pax header when ustar cannot hold the name or size. */
export function memberHeader(h: MemberHeader): Buffer {
  // The size and mtime come from the server's START: a header no reader takes is never written.
  if (!Number.isSafeInteger(h.size) || h.size < 0) throw error('EPROTO', `${h.name}: no usable size (${String(h.size)}) for its tar header`)
  if (!Number.isFinite(h.mtimeMs)) throw error('EPROTO', `${h.name}: no usable mtime (${String(h.mtimeMs)}) for its tar header`)
  const mtime = Math.max(0, Math.floor(h.mtimeMs / 1000))
  const split = ustarName(h.name)
  const pax: [string, string][] = []
  if (split === null) pax.push(['path', h.name])
  if (h.size > MAX_OCTAL) pax.push(['size', String(h.size)])
  if (mtime > MAX_OCTAL) pax.push(['mtime', String(mtime)])
  const block = ustar({
    name: split?.name ?? asciiTail(h.name),
    prefix: split?.prefix ?? '',
    size: Math.min(h.size, MAX_OCTAL),
    mtime: Math.min(mtime, MAX_OCTAL),
    mode: h.mode ?? 0o644,
    type: '0',
  })
  if (pax.length === 0) return block
  const records = paxRecords(pax)
  return Buffer.concat([paxHeader(records.length, mtime), records, padding(records.length), block])
}

/** Zeros that fill a member of `size` bytes up to a whole block. */
export function padding(size: number): Buffer {
  const rest = size % BLOCK
  return rest === 0 ? EMPTY : Buffer.alloc(BLOCK - rest)
}

/**
 * What `tar` writes after the last whole member when the stream failed: a pax
 * extended header whose records (a `comment` saying why) are cut short of the
 * block they announce, with no end-of-archive blocks. Readers that accept a
 * stream ending at a member boundary as complete (Python's tarfile in `r|`
 * mode, GNU tar) fail on it: tarfile raises ReadError, GNU tar reports
 * "Unexpected EOF in archive" and exits 2.
 */
export function truncationMark(reason: string): Buffer {
  const comment = `cacheserv-pipe-client: archive incomplete: ${reason.replace(/\n/g, ' ')}`
  let records = paxRecords([['comment', comment]])
  // Records that come to whole blocks would end the stream at a block boundary, which readers
  // take for a whole archive: one more character makes them stop short of the last block.
  if (records.length % BLOCK === 0) records = paxRecords([['comment', `${comment}.`]])
  return Buffer.concat([paxHeader(records.length, Math.floor(Date.now() / 1000)), records])
}

const EMPTY = Buffer.alloc(0)

/** The name split into ustar's prefix and name fields, or null when it does not fit (or is not ASCII). */
function ustarName(name: string): { prefix: string; name: string } | null {
  if (!/^[\x01-\x7f]*$/.test(name)) return null
  if (name.length <= 100) return { prefix: '', name }
  // The prefix ends at a '/', which neither field keeps.
  for (let i = name.indexOf('/'); i !== -1 && i <= 155; i = name.indexOf('/', i + 1)) {
    if (name.length - i - 1 <= 100 && i > 0) return { prefix: name.slice(0, i), name: name.slice(i + 1) }
  }
  return null
}

/** A stand-in for a name only a pax header holds: readers that ignore pax see something close. */
function asciiTail(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '_').slice(-100)
}

/** `LEN key=value\n` records; LEN counts the whole record, its own digits too. */
function paxRecords(pairs: [string, string][]): Buffer {
  const parts = pairs.map(([key, value]) => {
    const body = Buffer.byteLength(` ${key}=${value}\n`)
    let len = body + String(body).length
    if (String(len).length !== String(body).length) len = body + String(len).length
    return Buffer.from(`${len} ${key}=${value}\n`)
  })
  return Buffer.concat(parts)
}

function paxHeader(size: number, mtime: number): Buffer {
  return ustar({ name: 'PaxHeader', prefix: '', size, mtime: Math.min(mtime, MAX_OCTAL), mode: 0o644, type: 'x' })
}

function ustar(f: { name: string; prefix: string; size: number; mtime: number; mode: number; type: string }): Buffer {
  const b = Buffer.alloc(BLOCK)
  b.write(f.name, 0, 100, 'latin1')
  b.write(octal(f.mode, 7), 100, 'ascii')
  b.write(octal(0, 7), 108, 'ascii') // uid
  b.write(octal(0, 7), 116, 'ascii') // gid
  b.write(octal(f.size, 11), 124, 'ascii')
  b.write(octal(f.mtime, 11), 136, 'ascii')
  b.write(f.type, 156, 'ascii')
  b.write('ustar\x0000', 257, 'latin1')
  b.write(f.prefix, 345, 155, 'latin1')
  // The checksum: every byte summed with its own field taken as spaces.
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const byte of b) sum += byte
  b.write(`${octal(sum, 6)} `, 148, 'ascii')
  return b
}

/** `digits` octal digits and a NUL. */
function octal(n: number, digits: number): string {
  return `${n.toString(8).padStart(digits, '0')}\0`
}
