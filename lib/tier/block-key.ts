/**
 * Keys of the shared tier. A key names one block of one version of a file by
 * what every host sees alike: the path under the root, the size, the mtime
 * and ctime in nanoseconds, the block size and the block's index. Device and
 * inode differ between hosts and are left out. A changed file has a new key,
 * so no host ever needs to invalidate another's blocks; old versions' blocks
 * age out under Redis' maxmemory policy.
 */

/** `identity` as identityOf (lib/fs/identity.ts) made it: dev:ino:size:mtimeNs:ctimeNs. */
export function sharedBlockKey(prefix: string, name: string, identity: string, blockSize: number, index: number): string {
  const version = identity.slice(identity.indexOf(':', identity.indexOf(':') + 1) + 1)
  return `${prefix}${blockSize}:${version}:${index}:${name}`
}
