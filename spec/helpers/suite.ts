/** Helpers for describe blocks that share one server process. */
import assert from 'node:assert/strict'
import { after } from 'node:test'

/** Cleanups for a whole describe block, run (last first) when the block ends. */
export function suiteScope(): { after: (fn: () => unknown) => void } {
  const fns: Array<() => unknown> = []
  after(async () => {
    for (const fn of fns.reverse()) await fn()
  })
  return { after: (fn) => void fns.push(fn) }
}

/** Compare bytes without dumping megabytes into the failure message. */
export function assertSameBytes(actual: Buffer, expected: Buffer, what = 'output'): void {
  if (actual.equals(expected)) return
  let i = 0
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++
  assert.fail(`${what}: ${actual.length} bytes, expected ${expected.length}; first difference at byte ${i}`)
}
