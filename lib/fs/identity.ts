/**
 * The identity of a version of a file: device, inode, size, and mtime and
 * ctime in nanoseconds. It keys the cache, so a changed file never hits
 * blocks cached from its old contents. The ctime is there because the mtime
 * can be set back (`touch -d`, `rsync -t`, `tar x`): any change to a file,
 * including setting its mtime, stamps the ctime with the kernel's clock.
 */
import type { BigIntStats } from 'node:fs'

export function identityOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
}
