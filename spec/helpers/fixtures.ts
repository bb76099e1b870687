/** Temp directories and files for specs; everything is removed after the test. */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { TestContext } from 'node:test'

/** A fresh temp dir, removed when the test (or suite) ends. */
export function tempDir(t: Pick<TestContext, 'after'>, prefix = 'cacheserv-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Write `size` random bytes (or the given bytes) at root/rel, creating parent dirs. */
export function writeFile(root: string, rel: string, content: number | Buffer | string): Buffer {
  const data = typeof content === 'number' ? randomBytes(content) : Buffer.from(content)
  const path = join(root, rel)
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, data)
  return data
}

/** Why shared-memory specs cannot run here (no /dev/shm, or native/shm.node not built), or false. */
export function noSharedMemory(native: unknown): string | false {
  return !existsSync('/dev/shm') || !native ? 'needs /dev/shm and native/shm.node' : false
}

/** A path for a shared-memory store in a fresh private directory under /dev/shm (not created), removed after the test. */
export function storeDir(t: Pick<TestContext, 'after'>): string {
  const parent = mkdtempSync('/dev/shm/cacheserv-spec-')
  t.after(() => rmSync(parent, { recursive: true, force: true }))
  return join(parent, 'store')
}

/** `count` paths cycling through `paths`, drawn lazily; `taken()` says how many a consumer has drawn so far. */
export function lazyPaths(paths: readonly string[], count: number): { paths: Iterable<string>; taken: () => number } {
  let taken = 0
  function* draw() {
    for (let i = 0; i < count; i++) {
      taken++
      yield paths[i % paths.length]
    }
  }
  return { paths: draw(), taken: () => taken }
}
