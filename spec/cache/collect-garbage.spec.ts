/**
 * Full garbage collections on demand: one soon once 16 MiB of blocks or 64
 * connections have been let go, one once nothing more has been let go for a
 * second, never two within 200 ms; and a collection frees what nothing
 * reaches. Each case runs in a fresh node process (the module's counts and
 * timers are per process), which records the forced major collections V8
 * reports to a PerformanceObserver.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { describe, test } from 'node:test'

const MiB = 1024 * 1024

interface Run {
  /** Ms from the start at which forced major collections began. */
  forced: number[]
  /** Ms at which an object made unreachable at the start was finalized; -1 if it was not. */
  freed: number
}

/** Run `body` (with noteDropped, noteConnectionClosed and collectGarbageSoon in scope) in a fresh process for `ms`. */
function run(body: string, ms: number): Promise<Run> {
  const mod = JSON.stringify(new URL('../../lib/cache/collect-garbage.js', import.meta.url).href)
  const code = `
    import { constants, PerformanceObserver } from 'node:perf_hooks'
    import { collectGarbageSoon, noteConnectionClosed, noteDropped } from ${mod}
    const start = performance.now()
    const forced = []
    const seen = (list) => {
      for (const e of list.getEntries()) if (e.detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) forced.push(Math.round(e.startTime - start))
    }
    const observer = new PerformanceObserver(seen)
    observer.observe({ entryTypes: ['gc'] })
    let freed = -1
    const registry = new FinalizationRegistry(() => (freed = Math.round(performance.now() - start)))
    ;(() => registry.register({ garbage: new Array(1000).fill(0) }, 0))()
    ${body}
    setTimeout(() => {
      seen({ getEntries: () => observer.takeRecords() })
      observer.disconnect()
      console.log(JSON.stringify({ forced, freed }))
    }, ${ms})
  `
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: ms + 20_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout) as Run))),
  )
}

describe('collect-garbage', () => {
  test('16 MiB of blocks let go bring a full collection soon, which frees what nothing reaches', async () => {
    const r = await run(`noteDropped(${16 * MiB})`, 900)
    assert.equal(r.forced.length, 1, JSON.stringify(r))
    // Not at once: the teardown that let them go drops its own references first.
    assert.ok(r.forced[0] >= 45, JSON.stringify(r))
    assert.ok(r.freed >= r.forced[0], JSON.stringify(r))
  })

  test('less than 16 MiB waits for things to be quiet for a second', async () => {
    const r = await run(`noteDropped(${16 * MiB - 1})`, 1600)
    assert.equal(r.forced.length, 1, JSON.stringify(r))
    assert.ok(r.forced[0] >= 995, JSON.stringify(r))
  })

  test('64 connections closed bring one soon; 63 wait for the quiet', async () => {
    const many = await run('for (let i = 0; i < 64; i++) noteConnectionClosed()', 900)
    assert.equal(many.forced.length, 1, JSON.stringify(many))
    const fewer = await run('for (let i = 0; i < 63; i++) noteConnectionClosed()', 1600)
    assert.equal(fewer.forced.length, 1, JSON.stringify(fewer))
    assert.ok(fewer.forced[0] >= 995, JSON.stringify(fewer))
  })

  test('each thing let go puts the quiet collection off by another second', async () => {
    const r = await run(`for (const at of [0, 300, 600]) setTimeout(() => noteDropped(${MiB}), at)`, 2000)
    assert.equal(r.forced.length, 1, JSON.stringify(r))
    assert.ok(r.forced[0] >= 1595, JSON.stringify(r))
  })

  test('never two within 200 ms, however fast blocks are let go', async () => {
    const r = await run(`const timer = setInterval(() => noteDropped(${16 * MiB}), 10); setTimeout(() => clearInterval(timer), 1000)`, 1300)
    assert.ok(r.forced.length >= 3, JSON.stringify(r))
    for (let i = 1; i < r.forced.length; i++) assert.ok(r.forced[i] - r.forced[i - 1] >= 195, JSON.stringify(r))
  })

  test('collectGarbageSoon while one is scheduled adds none', async () => {
    const r = await run('for (let i = 0; i < 5; i++) collectGarbageSoon()', 800)
    assert.equal(r.forced.length, 1, JSON.stringify(r))
    assert.ok(r.freed >= 0)
  })
})
