/**
 * A directory read whole: its entries' names in order, their kinds, and (when
 * asked) each entry's lstat. One job on the thread pool with the native addon
 * (native/dirs.cc); readdir and an lstat per entry without it.
 *
 * Entries are looked at with lstat through the directory as it was read, so
 * an entry that is a symlink shows as one (the jail resolves it), never as
 * what it points to. Uploads on their way are left out: they are not part of
 * the tree yet.
 */
import { lstat, readdir } from 'node:fs/promises'
import { shmNative } from '../cache/shm-native.js'
import type { Found } from './jail.js'
import { isUploadTemp } from './upload-temp.js'

export const KIND_FILE = 0
export const KIND_DIR = 1
export const KIND_LINK = 2
export const KIND_OTHER = 3
/** No stat was taken and the directory did not say (some filesystems): only ever in a listing without stats. */
const KIND_UNKNOWN = 4

/** Fields of one entry's stat in Listing.stats. */
export const STAT_FIELDS = 6
const DEV = 0
const INO = 1
const SIZE = 2
const MTIME = 3
const CTIME = 4
const NLINK = 5

export interface Listing {
  /** Sorted by UTF-16 code units. */
  names: string[]
  kinds: Uint8Array
  /** [dev, ino, size, mtimeNs, ctimeNs, nlink] per entry (lstat), or null when listed without. */
  stats: BigInt64Array | null
  /** The directory's own device and inode, as it was read. */
  dev: bigint
  ino: bigint
  /** statfs f_type of its filesystem; 0 when not known. */
  fsType: number
}

export function sizeOf(l: Listing, i: number): number {
  return Number(l.stats![i * STAT_FIELDS + SIZE])
}

/** Entry `i`'s mtime in whole ms, as a BigIntStats gives it. */
export function mtimeMsOf(l: Listing, i: number): number {
  return Number(l.stats![i * STAT_FIELDS + MTIME] / 1_000_000n)
}

/** The cache key of the version of file entry `i` (as identityOf makes it). */
export function keyOf(l: Listing, i: number): string {
  const s = l.stats!
  const o = i * STAT_FIELDS
  return `${s[o + DEV]}:${s[o + INO]}:${s[o + SIZE]}:${s[o + MTIME]}:${s[o + CTIME]}`
}

/** Device and inode of entry `i`, as a directory is keyed in the metadata cache. */
export function dirKeyOf(l: Listing, i: number): string {
  const o = i * STAT_FIELDS
  return `${l.stats![o + DEV]}:${l.stats![o + INO]}`
}

/** Entry `i` is a file with more than one name: a change made through another name is not seen in this directory. */
export function linkedElsewhere(l: Listing, i: number): boolean {
  return l.kinds[i] === KIND_FILE && l.stats![i * STAT_FIELDS + NLINK] > 1n
}

/** Bytes a listing keeps in memory, about: what the metadata cache counts. */
export function listingBytes(l: Listing): number {
  let n = 128
  for (const name of l.names) n += name.length + 24
  return n + l.kinds.length + (l.stats ? l.stats.length * 8 : 0)
}

/** Read a held directory whole. */
export function readListing(dir: Found, withStats: boolean): Promise<Listing> {
  const native = shmNative()
  return native ? readNative(native.listDir.bind(native), dir, withStats) : readPlain(dir, withStats)
}

type ListDir = NonNullable<ReturnType<typeof shmNative>>['listDir']

function readNative(listDir: ListDir, dir: Found, withStats: boolean): Promise<Listing> {
  return new Promise((resolve, reject) => {
    listDir(dir.path, withStats, (code, joined, kinds, stats, self) => {
      if (code !== null) return reject(Object.assign(new Error(`${code}: cannot list a directory`), { code }))
      const names = joined!.length === 0 ? [] : joined!.slice(0, -1).split('\0')
      if (!withStats && kinds!.includes(KIND_UNKNOWN)) return resolve(readNative(listDir, dir, true))
      resolve(sorted(names, kinds!, stats, self![DEV], self![INO], Number(self![6])))
    })
  })
}

async function readPlain(dir: Found, withStats: boolean): Promise<Listing> {
  const entries = await readdir(dir.path, { withFileTypes: true })
  const names = entries.map((d) => d.name)
  const kinds = Uint8Array.from(entries, (d) => (d.isFile() ? KIND_FILE : d.isDirectory() ? KIND_DIR : d.isSymbolicLink() ? KIND_LINK : KIND_OTHER))
  let stats: BigInt64Array | null = null
  if (withStats) {
    stats = new BigInt64Array(names.length * STAT_FIELDS)
    /** Entries gone since readdir. */
    const gone = new Set<number>()
    for (let i = 0; i < names.length; i += 64) {
      await Promise.all(
        names.slice(i, i + 64).map(async (name, j) => {
          const k = i + j
          const st = await lstat(`${dir.path}/${name}`, { bigint: true }).catch(() => null)
          if (!st) return void gone.add(k) // gone since readdir
          kinds[k] = st.isFile() ? KIND_FILE : st.isDirectory() ? KIND_DIR : st.isSymbolicLink() ? KIND_LINK : KIND_OTHER
          stats!.set([st.dev, st.ino, st.size, st.mtimeNs, st.ctimeNs, st.nlink], k * STAT_FIELDS)
        }),
      )
    }
    return sorted(names, kinds, stats, dir.st.dev, dir.st.ino, 0, gone)
  }
  return sorted(names, kinds, stats, dir.st.dev, dir.st.ino, 0)
}

/** The entries in name order, uploads on their way and those in `gone` left out. */
function sorted(names: string[], kinds: Uint8Array, stats: BigInt64Array | null, dev: bigint, ino: bigint, fsType: number, gone?: Set<number>): Listing {
  const order = names.map((_, i) => i).filter((i) => !isUploadTemp(names[i]) && !gone?.has(i))
  order.sort((a, b) => (names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0))
  const out: Listing = { names: order.map((i) => names[i]), kinds: Uint8Array.from(order, (i) => kinds[i]), stats: null, dev, ino, fsType }
  if (stats) {
    out.stats = new BigInt64Array(order.length * STAT_FIELDS)
    order.forEach((from, to) => out.stats!.set(stats.subarray(from * STAT_FIELDS, (from + 1) * STAT_FIELDS), to * STAT_FIELDS))
  }
  return out
}
