/** Named pipes, and the PipeTarget the client CLI makes of its stdout, for specs of splicing from shared memory. */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import type { PipeTarget } from '../../lib/client/types.js'
import { tempDir } from './fixtures.js'

/** A named pipe in a fresh directory, removed after the test. */
export function fifo(t: Pick<TestContext, 'after'>): string {
  const path = join(tempDir(t), 'pipe')
  assert.equal(spawnSync('mkfifo', [path]).status, 0)
  return path
}

/** The pipe open for writing at `fd`, widened to `size` bytes, as a PipeTarget (needs the native addon). */
export function pipeTarget(fd: number, size: number): PipeTarget {
  const native = shmNative()!
  assert.equal(native.pipeSize(fd, size), size)
  return { size: () => native.pipeSize(fd), unread: () => native.pipeUnread(fd), splice: (from, offset, length) => native.splice(from, offset, fd, length) }
}
