/**
 * The shared-memory store's directory (ShmStore) on a tmpfs every user
 * shares: private to this user, used by one running server at a time (the
 * pid in its `owner` file), and with room for the cache. A store whose
 * server is gone is taken over, so a server restarted after a crash finds
 * its blocks (and sweepStores can tell which stores nobody runs).
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/** Create `dir` private to this user, or accept it only if it already is (a tmpfs is shared by all users). */
export function claimDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const st = lstatSync(dir)
  const uid = process.getuid?.() ?? st.uid
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new Error(`the shared-memory store ${dir} must be a directory owned by this user with mode 0700`)
  }
}

/**
 * Name this process in the store's owner file; one left by a process that is
 * gone is taken over. Throws while another running server owns the store.
 */
export function claimOwner(dir: string): void {
  const owner = join(dir, 'owner')
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(owner, `${process.pid}\n`, { flag: 'wx', mode: 0o600 })
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const pid = Number.parseInt(readFileQuiet(owner) ?? '', 10)
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(`the shared-memory store ${dir} is in use by the server with pid ${pid}; give this one another --shm-dir`)
    }
    unlinkQuiet(owner)
  }
  throw new Error(`could not take the shared-memory store ${dir}`)
}

/** Throws unless the filesystem of `dir` has room for `bytes` of blocks, counting the slabs an earlier server left (they are reused, not added). */
export function checkRoom(dir: string, bytes: number): void {
  const fs = statfsSync(dir)
  let have = fs.bavail * fs.bsize
  for (const name of readdirSync(dir)) if (name.startsWith('slab-')) have += lstatSync(join(dir, name)).blocks * 512
  if (have < bytes) {
    throw new Error(
      `the cache does not fit the shared memory at ${dir}: it needs ${mib(bytes)} MiB and the filesystem has ${mib(have)} MiB free; lower --cache-size, enlarge the tmpfs, or give --shm-dir another tmpfs`,
    )
  }
}

/** Whether a process `pid` runs (one of another user's counts too). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The file's text, or undefined when it cannot be read (a store's files may be gone or half made). */
export function readFileQuiet(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}

export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}

const mib = (n: number) => Math.ceil(n / 2 ** 20)
