/**
 * A small tmpfs of a test's own, for a shared-memory store that runs out of
 * room: mounted here (root only) and unmounted after the test.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'

export interface SmallTmpfs {
  dir: string
  /** Fill it to its last page with a file of its own. */
  fill(): void
}

/** A 4 MiB tmpfs, or null (the test skipped) where one cannot be mounted. */
export function smallTmpfs(t: Pick<TestContext, 'after' | 'skip'>): SmallTmpfs | null {
  const dir = mkdtempSync(join(tmpdir(), 'cacheserv-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', dir], { stdio: 'ignore' })
  } catch {
    rmSync(dir, { recursive: true, force: true })
    t.skip('needs to mount a tmpfs (root)')
    return null
  }
  t.after(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'ignore' })
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    dir,
    fill: () => {
      const fd = openSync(join(dir, 'filler'), 'w')
      try {
        const chunk = Buffer.alloc(64 * 1024)
        for (;;) writeSync(fd, chunk)
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC')
      } finally {
        closeSync(fd)
      }
      assert.equal(statfsSync(dir).bfree, 0)
    },
  }
}
