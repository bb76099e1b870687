/**
 * Keys of the shared tier. A key names one block of one version of a file by
 * what every host sees alike: the file's real path under the root, its inode
 * number, size, mtime and ctime in nanoseconds, the block size and the block's
 * index. The device number differs between hosts and is left out. The inode
 * number is the same on every host of a shared filesystem (NFS, CephFS,
 * Lustre); it is what tells apart two files that took turns at one path with
 * the same size and times (written in one tick of the kernel's clock, then a
 * directory swapped for another). Where hosts number inodes each their own
 * way (FUSE bucket mounts) it can be left out, and those two files would
 * share blocks. A changed file has a new key, so no host ever needs to
 * invalidate another's blocks; old versions' blocks age out under Redis'
 * maxmemory policy.
 */

import { sharedVersion } from '../fs/identity.js'

/** `identity` as identityOf (lib/fs/identity.ts) made it. */
export function sharedBlockKey(prefix: string, name: string, identity: string, blockSize: number, index: number, inode = true): string {
  return `${prefix}${blockSize}:${sharedVersion(identity, inode)}:${index}:${name}`
}
