/**
 * Resolve client paths inside the served root. A path is relative to the root,
 * '/'-separated; absolute paths, '..' segments, NUL bytes and backslashes are
 * refused, and so is a symlink whose target lies outside the root.
 *
 * On Linux every lookup acts through descriptors obtained inside the root: a
 * descriptor of the root is kept open, and a path is walked one name at a
 * time, each name opened inside the directory descriptor reached so far
 * (`/proc/self/fd/<dir>/<name>` with O_NOFOLLOW is openat(dir, name,
 * O_NOFOLLOW)). Descriptors are O_PATH: opening one has no effect on what it
 * names (a FIFO or a device is not opened). A symlink met on the way is read
 * and its target walked the same way: a relative target from the directory
 * it sits in ('..' goes back up the directories walked; above the root, only
 * names leading straight back into it are accepted), an absolute one only
 * when it lies under the root's real path. So
 * swapping any name on the way for a symlink, at any moment, can only lead to
 * another place inside the root, or to a refusal.
 *
 * Where there is no /proc (not Linux), a path is resolved with realpath and
 * checked to lie under the root, and what it names is then used by its path:
 * a name swapped between the check and the use is not caught there.
 */
import { type BigIntStats, closeSync, existsSync, openSync } from 'node:fs'
import { lstat, readlink, realpath, stat } from 'node:fs/promises'
import { relative, sep } from 'node:path'
import { error } from '../errors.js'
import { type ClientPath, parseClientPath } from './client-path.js'
import type { FileStat } from './identity.js'
import { jailError, notDir, outside } from './jail-errors.js'
import { openBeneath } from './open-beneath.js'
import { fstatFd, O_DIRECTORY, O_NOFOLLOW, O_PATH, openFd, release } from './path-descriptors.js'
import { isUploadTemp } from './upload-temp.js'

export type { ClientPath } from './client-path.js'
export { O_PATH } from './path-descriptors.js'

/** Symlinks followed while resolving one path at most (Linux's own limit, MAXSYMLINKS). */
const MAX_HOPS = 40

/**
 * What a path resolved to, held open until `close()`. `path` names it for
 * further calls: `/proc/self/fd/<fd>` on Linux (so a name swapped meanwhile
 * changes nothing), its real path elsewhere. `path + '/' + name` names an
 * entry of a directory (lstat it: it is not followed).
 */
export interface Found {
  path: string
  /** `path` names the descriptor held (Linux), not a name. */
  held: boolean
  /** Its real location: names under the root, no symlinks (empty for the root). */
  names: string[]
  /** What it is now (fstat of the descriptor). */
  st: BigIntStats
  /** Release it; more calls do nothing. */
  close(): void
}

export class Jail {
  /** The root's real path. */
  readonly root: string
  #rootParts: string[]
  /** O_PATH descriptor of the root (Linux with /proc), or -1. */
  #fd: number
  /** Lookups under way and Founds not yet closed: the root's descriptor stays open for them. */
  #users = 0
  #closed = false

  private constructor(root: string, fd: number) {
    this.root = root
    this.#rootParts = root.split(sep).filter((p) => p !== '')
    this.#fd = fd
  }

  /** The root itself must exist and is resolved once, so symlinked roots work. */
  static async open(root: string): Promise<Jail> {
    const real = await realpath(root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') throw Object.assign(new Error(`root ${root} does not exist`), { code: 'ENOENT' })
      throw err
    })
    if (process.platform === 'linux') {
      let fd: number
      try {
        fd = openSync(real, O_PATH | O_DIRECTORY)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw Object.assign(new Error(`root ${root} is not a directory`), { code: 'ENOTDIR' })
        throw err
      }
      if (existsSync(`/proc/self/fd/${fd}/.`)) return new Jail(real, fd)
      closeSync(fd) // no /proc mounted
    }
    if (!(await stat(real)).isDirectory()) throw Object.assign(new Error(`root ${root} is not a directory`), { code: 'ENOTDIR' })
    return new Jail(real, -1)
  }

  /** Lookups act through descriptors (false where there is no /proc). */
  get descriptors(): boolean {
    return this.#fd >= 0
  }

  /** Release the root's descriptor once the lookups under way and the Founds out are done; later lookups fail. */
  close(): void {
    this.#closed = true
    if (this.#users === 0) this.#closeRoot()
  }

  /** How a client path is named in messages: the root has no name of its own. */
  static shown(path: string): string {
    return Jail.segments(path).length === 0 ? 'the root' : path
  }

  /** Check a client path's shape and return its segments (empty for the root). */
  static segments(path: unknown): string[] {
    return Jail.parse(path).parts
  }

  /**
   * Check a client path's shape: its segments, empty and '.' ones dropped,
   * and whether it ends in '/' or '/.' (then it must name a directory).
   */
  static parse(path: unknown): ClientPath {
    return parseClientPath(path)
  }

  /**
   * A path naming the segments under the root, unresolved (symlinks are
   * followed by whoever uses it, so only for a stat whose result is compared,
   * never reported): from the root's descriptor where there is one.
   */
  under(parts: readonly string[]): string {
    if (this.#fd >= 0 && !this.#closed) return parts.length === 0 ? `/proc/self/fd/${this.#fd}` : `/proc/self/fd/${this.#fd}/${parts.join('/')}`
    return parts.length === 0 ? this.root : this.root + sep + parts.join(sep)
  }

  /**
   * Open the regular file `parts` names for reading, the cheap way
   * (open-beneath.ts), when its path has no symlink; null when the walk must
   * decide (lookupParts). The root's descriptor stays open meanwhile.
   */
  async openPlain(parts: readonly string[]): Promise<{ fd: number; st: FileStat } | null> {
    if (this.#closed || this.#fd < 0) return null
    this.#users++
    try {
      return await openBeneath(this.#fd, parts)
    } finally {
      this.#release()
    }
  }

  /** Absolute real path of a client path, guaranteed inside the root (when it was resolved). */
  async resolve(path: unknown): Promise<string> {
    const found = await this.lookup(path)
    found.close()
    return this.realOf(found.names)
  }

  /** The real path of names under the root. */
  realOf(names: readonly string[]): string {
    return names.length === 0 ? this.root : (this.root === sep ? '' : this.root) + sep + names.join(sep)
  }

  /** Resolve a client path (symlinks inside the root followed) and hold what it names. */
  lookup(path: unknown): Promise<Found> {
    const { parts, dirOnly } = Jail.parse(path)
    return this.lookupParts(parts, String(path), dirOnly)
  }

  /**
   * Resolve names under the root (already checked: no '/', no NUL, no '..' of
   * their own) and hold what they name; `shown` names the path in errors.
   */
  async lookupParts(parts: readonly string[], shown: string, dirOnly = false): Promise<Found> {
    if (this.#closed) throw error('ESHUTDOWN', 'the server is closed')
    this.#users++
    try {
      return this.#fd >= 0 ? await this.#walk(parts, shown, dirOnly) : await this.#realpath(parts, shown, dirOnly)
    } catch (err) {
      this.#release()
      throw err
    }
  }

  /**
   * The plain subdirectory `name` of a held directory, held in turn: ENOTDIR
   * when the entry is anything else (a symlink included: resolve it with
   * lookupParts), ENOENT when it is gone.
   */
  async subdir(dir: Found, name: string, shown: string): Promise<Found> {
    if (this.#closed) throw error('ESHUTDOWN', 'the server is closed')
    this.#users++
    try {
      const at = `${dir.path}/${name}`
      const names = [...dir.names, name]
      if (!dir.held) {
        const st = await lstat(at, { bigint: true })
        if (!st.isDirectory()) throw notDir(shown)
        let open = true
        return { path: at, held: false, names, st, close: () => void (open && ((open = false), this.#release())) }
      }
      const fd = await openFd(at, O_PATH | O_NOFOLLOW | O_DIRECTORY)
      try {
        return this.#found(fd, true, names, await fstatFd(fd))
      } catch (err) {
        release(fd)
        throw err
      }
    } catch (err) {
      this.#release()
      throw jailError(err, shown)
    }
  }

  contains(real: string): boolean {
    return real === this.root || real.startsWith(this.root === sep ? sep : this.root + sep)
  }

  #release(): void {
    if (--this.#users === 0 && this.#closed) this.#closeRoot()
  }

  #closeRoot(): void {
    if (this.#fd >= 0) release(this.#fd)
    this.#fd = -1
  }

  #found(fd: number, owned: boolean, names: string[], st: BigIntStats): Found {
    let open = true
    return {
      path: `/proc/self/fd/${fd}`,
      held: true,
      names,
      st,
      close: () => {
        if (!open) return
        open = false
        if (owned) release(fd)
        this.#release()
      },
    }
  }

  /** Walk `parts` one name at a time from the root's descriptor (see the top of this file). */
  async #walk(parts: readonly string[], shown: string, dirOnly: boolean): Promise<Found> {
    /** Names still to walk, the next one last. */
    const todo = parts.slice().reverse()
    /** Directories walked into below the root, each a child of the one before. */
    const dirs: { fd: number; name: string }[] = []
    const here = () => (dirs.length === 0 ? this.#fd : dirs[dirs.length - 1].fd)
    let hops = 0
    /**
     * Where the walk is when above the root (an absolute target, or '..' from
     * the root): only spelled out, never looked up, and refused unless the
     * names that follow lead straight back down to the root.
     */
    let out: string[] | null = null
    const leave = (at: string[]) => {
      out = at.length === this.#rootParts.length ? null : at
    }
    /** `at` is a symlink: walk its target instead. */
    const follow = async (at: string, name: string, last: boolean) => {
      if (++hops > MAX_HOPS) throw error('EACCES', `path refused: symlinks loop on the way to ${shown}`)
      let target: string
      try {
        target = await readlink(at)
      } catch (err) {
        // Not a symlink any more (swapped back meanwhile): look at the name again.
        if ((err as NodeJS.ErrnoException).code === 'EINVAL') return void todo.push(name)
        throw err
      }
      const names = target.split('/').filter((p) => p !== '' && p !== '.')
      if (target.startsWith('/')) {
        for (const d of dirs.splice(0)) release(d.fd)
        leave([])
      }
      // A target ending in '/' must name a directory, as a path of the client's would.
      if (last && /(^|\/)\.?$/.test(target)) dirOnly = true
      todo.push(...names.reverse())
    }
    try {
      while (todo.length > 0) {
        const name = todo.pop()!
        // Not even through a symlink: an upload's temporary file is not part of the tree.
        if (isUploadTemp(name)) throw error('ENOENT', `no such file or directory: ${shown}`)
        if (out !== null) {
          const above: string[] = out
          if (name === '..') above.pop()
          else above.push(name)
          if (above.length > this.#rootParts.length || above.some((p, i) => p !== this.#rootParts[i])) throw outside(shown)
          leave(above)
          continue
        }
        if (name === '..') {
          if (dirs.length === 0) leave(this.#rootParts.slice(0, -1))
          else release(dirs.pop()!.fd)
          continue
        }
        const last = todo.length === 0
        const at = `/proc/self/fd/${here()}/${name}`
        if (!last) {
          let fd: number
          try {
            fd = await openFd(at, O_PATH | O_NOFOLLOW | O_DIRECTORY)
          } catch (err) {
            // ENOTDIR: a symlink (O_NOFOLLOW), or not a directory at all.
            if ((err as NodeJS.ErrnoException).code === 'ENOTDIR' && (await lstat(at).catch(() => null))?.isSymbolicLink()) {
              await follow(at, name, false)
              continue
            }
            throw err
          }
          dirs.push({ fd, name })
          continue
        }
        const fd = await openFd(at, O_PATH | O_NOFOLLOW)
        let st: BigIntStats
        try {
          st = await fstatFd(fd)
        } catch (err) {
          release(fd)
          throw err
        }
        if (st.isSymbolicLink()) {
          release(fd)
          await follow(at, name, true)
          continue
        }
        if (dirOnly && !st.isDirectory()) {
          release(fd)
          throw notDir(shown)
        }
        return this.#found(fd, true, [...dirs.map((d) => d.name), name], st)
      }
      if (out !== null) throw outside(shown)
      // The walk ended on a directory already held: the root, or one reached through '..'.
      const top = dirs.pop()
      const fd = top?.fd ?? this.#fd
      let st: BigIntStats
      try {
        st = await fstatFd(fd)
      } catch (err) {
        if (top) release(top.fd)
        throw err
      }
      return this.#found(fd, top !== undefined, [...dirs.map((d) => d.name), ...(top ? [top.name] : [])], st)
    } catch (err) {
      throw jailError(err, shown)
    } finally {
      for (const d of dirs) release(d.fd)
    }
  }

  /** Where there is no /proc: realpath, then the prefix check. */
  async #realpath(parts: readonly string[], shown: string, dirOnly: boolean): Promise<Found> {
    const joined = parts.length === 0 ? this.root : this.root + sep + parts.join(sep)
    let real: string
    let st: BigIntStats
    try {
      real = await realpath(joined)
      if (!this.contains(real)) throw outside(shown)
      st = await stat(real, { bigint: true })
      if (dirOnly && !st.isDirectory()) throw notDir(shown)
    } catch (err) {
      throw jailError(err, shown)
    }
    let open = true
    return {
      path: real,
      held: false,
      names: real === this.root ? [] : relative(this.root, real).split(sep),
      st,
      close: () => {
        if (open) this.#release()
        open = false
      },
    }
  }
}
