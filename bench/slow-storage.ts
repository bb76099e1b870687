/**
 * Slow storage for the bench: a cgroup v1 blkio group that throttles reads
 * from the block device holding a directory, and a way to run a command in
 * it. Null where the machine has no cgroup v1 blkio controller, or the bench
 * may not make groups there (not root), or the directory is on no block
 * device (tmpfs).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const BLKIO = '/sys/fs/cgroup/blkio'

export interface SlowStorage {
  /** The shell command, run in the throttled group. */
  wrap(cmd: string): string
  /** The group's cgroup.procs: a process that writes its PID there joins the group (after its imports, say), its children with it. */
  readonly procs: string
  /** Bytes a second the group may read. */
  readonly bps: number
  remove(): void
}

export function slowStorage(dir: string, bps: number): SlowStorage | { skipped: string } {
  if (!existsSync(join(BLKIO, 'blkio.throttle.read_bps_device'))) return { skipped: 'no cgroup v1 blkio controller' }
  const dev = statSync(dir).dev
  const major = Math.floor(dev / 256) & 0xfff
  const minor = (dev & 0xff) | (Math.floor(dev / 2 ** 12) & 0xfff00)
  if (!existsSync(`/sys/dev/block/${major}:${minor}`)) return { skipped: `${dir} is on no block device (${major}:${minor})` }
  const group = join(BLKIO, `cacheserv-bench-${process.pid}`)
  try {
    mkdirSync(group)
    writeFileSync(join(group, 'blkio.throttle.read_bps_device'), `${major}:${minor} ${bps}`)
  } catch (err) {
    return { skipped: `cannot make a blkio group: ${(err as Error).message}` }
  }
  return {
    bps,
    procs: join(group, 'cgroup.procs'),
    wrap: (cmd) => `echo $$ > ${join(group, 'cgroup.procs')} && exec ${cmd}`,
    remove: () => {
      // Empty once its commands exited; a group with a process left in it stays (and says so on the next bench).
      if (readFileSync(join(group, 'cgroup.procs'), 'utf8').trim() === '') rmdirSync(group)
    },
  }
}
