/**
 * The identity of a version of a file: device, inode, size, and mtime and
 * ctime in nanoseconds. It keys the cache, so a changed file never hits
 * blocks cached from its old contents. The ctime is there because the mtime
 * can be set back (`touch -d`, `rsync -t`, `tar x`): any change to a file,
 * including setting its mtime, stamps the ctime with the kernel's clock.
 */
import type { BigIntStats } from 'node:fs'

/** What the server needs of a file's stat: a BigIntStats, or the few fields lib/fs/open-beneath.ts reads. */
export type FileStat = Pick<BigIntStats, 'dev' | 'ino' | 'size' | 'mtimeMs' | 'mtimeNs' | 'ctimeNs' | 'isFile' | 'isDirectory'>

const S_IFMT = 0o170000n
const S_IFREG = 0o100000n
const S_IFDIR = 0o040000n

/** A stat the native addon gave as [dev, ino, mode, size, mtimeNs, ctimeNs] (native/shm.cc). */
export function nativeStat(raw: BigInt64Array): FileStat {
  const [dev, ino, mode, size, mtimeNs, ctimeNs] = raw as unknown as [bigint, bigint, bigint, bigint, bigint, bigint]
  return {
    dev,
    ino,
    size,
    mtimeNs,
    ctimeNs,
    mtimeMs: mtimeNs / 1_000_000n,
    isFile: () => (mode & S_IFMT) === S_IFREG,
    isDirectory: () => (mode & S_IFMT) === S_IFDIR,
  }
}

export function identityOf(st: FileStat): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}

/**
 * An identity without the device number, which differs between hosts (and
 * without the inode number too, unless `inode`): inode:size:mtimeNs:ctimeNs.
 */
export function sharedVersion(identity: string, inode = true): string {
  const afterDev = identity.indexOf(':') + 1
  return inode ? identity.slice(afterDev) : identity.slice(identity.indexOf(':', afterDev) + 1)
}

/** Bytes of an identity in binary (writeIdentity). */
export const IDENTITY_BYTES = 40

/** Write an identity (as identityOf made it) in 40 bytes at `offset`; false if `key` is not one. */
export function writeIdentity(key: string, buf: Buffer, offset: number): boolean {
  const parts = key.split(':')
  if (parts.length !== 5 || !parts.every((p) => /^-?\d+$/.test(p))) return false
  const [dev, ino, size, mtime, ctime] = parts.map(BigInt)
  if (dev < 0n || ino < 0n || size < 0n || dev >= 2n ** 64n || ino >= 2n ** 64n || size >= 2n ** 63n) return false
  if ([mtime, ctime].some((t) => t < -(2n ** 63n) || t >= 2n ** 63n)) return false
  buf.writeBigUInt64LE(dev, offset)
  buf.writeBigUInt64LE(ino, offset + 8)
  buf.writeBigUInt64LE(size, offset + 16)
  buf.writeBigInt64LE(mtime, offset + 24)
  buf.writeBigInt64LE(ctime, offset + 32)
  return true
}

/** The identity writeIdentity wrote at `offset`. */
export function readIdentity(buf: Buffer, offset: number): string {
  return `${buf.readBigUInt64LE(offset)}:${buf.readBigUInt64LE(offset + 8)}:${buf.readBigUInt64LE(offset + 16)}:${buf.readBigInt64LE(offset + 24)}:${buf.readBigInt64LE(offset + 32)}`
}
