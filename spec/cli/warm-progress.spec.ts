/**
 * warmDisplay: a progress bar for `warm` on a terminal, nothing elsewhere
 * (the summary line follows either way). The terminal is a stream that says
 * it is one and keeps what is written to it.
 */
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, test } from 'node:test'
import type { WarmResult } from '../../lib/client/client.js'
import { warmDisplay } from '../../lib/cli/warm-progress.js'
import { run } from '../helpers/cli.js'

const MiB = 1024 * 1024
const WARM_PROGRESS = new URL('../../lib/cli/warm-progress.js', import.meta.url).href

/** A stream standing in for a terminal of `columns`, or a pipe. */
function screen(tty: boolean, columns = 160): NodeJS.WriteStream & { text: () => string } {
  let text = ''
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString()
      cb()
    },
  }) as unknown as NodeJS.WriteStream & { text: () => string }
  Object.assign(stream, { isTTY: tty, columns, text: () => text })
  return stream
}

const progress = (files: number, bytes: number): WarmResult => ({ files, bytes, totalFiles: 6, totalBytes: 10 * MiB, full: false })

/** What is on the bar's line now: the text after the last carriage return or cursor move, escapes removed. */
const lastDrawn = (text: string) => text.split(/\r|\x1b\[\d*G/).at(-1)!.replace(/\x1b\[[\d;?]*[A-Za-z]|\x1b[78]/g, '').trim()

describe('warmDisplay', () => {
  test('not on a terminal: shows nothing, and never loads the progress bar package', async () => {
    const script = `
      import { createRequire } from 'node:module'
      const { warmDisplay } = await import(${JSON.stringify(WARM_PROGRESS)})
      const d = await warmDisplay()
      d.update({ files: 1, bytes: 10, totalFiles: 2, totalBytes: 20, full: false })
      d.stop()
      const loaded = Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/cli-progress/'))
      process.stdout.write(JSON.stringify({ loaded }))
    `
    const r = await run(process.execPath, ['--input-type=module', '-e', script]) // stderr is a pipe here
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout.toString()), { loaded: false })
    assert.equal(r.stderr, '')
  })

  test('a stream that is not a terminal gets nothing written', async () => {
    const out = screen(false)
    const d = await warmDisplay(out)
    d.update(progress(3, 5 * MiB))
    d.stop()
    assert.equal(out.text(), '')
  })

  test('on a terminal: a bar with the bytes and files done of all, the percentage and the rate', async (t) => {
    const out = screen(true)
    const d = await warmDisplay(out)
    t.after(() => d.stop())
    d.update(progress(3, 5 * MiB))
    const line = lastDrawn(out.text())
    assert.match(line, /^warming \S+ 50% \| 5 MiB of 10 MiB \| 3\/6 files \| [\d.]+ [KMG]?i?B\/s \| ETA /, line)
  })

  test('a list\'s totals grow as the server reaches its paths: the bar\'s total and percentage follow', async () => {
    const out = screen(true)
    const d = await warmDisplay(out)
    d.update({ files: 1, bytes: MiB, totalFiles: 2, totalBytes: 2 * MiB, full: false })
    d.update({ files: 2, bytes: 2 * MiB, totalFiles: 8, totalBytes: 8 * MiB, full: false })
    d.stop() // draws the last update (the bar redraws at most a few times a second)
    const line = lastDrawn(out.text().trimEnd())
    assert.match(line, / 25% \| 2 MiB of 8 MiB \| 2\/8 files/, line)
  })

  test('later updates move the bar; stop draws it once more, ends its line and shows the cursor again', async () => {
    const out = screen(true)
    const d = await warmDisplay(out)
    d.update(progress(1, MiB))
    d.update(progress(6, 10 * MiB))
    const before = out.text().length
    d.stop()
    const text = out.text()
    assert.match(lastDrawn(text.trimEnd()), /100% \| 10 MiB of 10 MiB \| 6\/6 files/)
    assert.ok(text.slice(before).includes('\x1b[?25h'), 'the cursor is shown again')
    assert.ok(text.endsWith('\n'), 'the summary line goes below the bar')
  })

  test('stop leaves no timer or signal handler behind, so the process can exit', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const signals = () => process.listenerCount('SIGINT') + process.listenerCount('SIGTERM')
    const [t0, s0] = [timers(), signals()]
    const d = await warmDisplay(screen(true))
    d.update(progress(2, 3 * MiB))
    assert.ok(timers() > t0, 'the bar redraws on a timer while it runs')
    d.stop()
    assert.equal(timers(), t0)
    assert.equal(signals(), s0)
  })

  test('stop before any update draws nothing', async () => {
    const out = screen(true)
    const d = await warmDisplay(out)
    d.stop()
    assert.equal(out.text(), '')
  })

  test('an empty tree (0 bytes in all) draws a bar without NaN', async () => {
    const out = screen(true)
    const d = await warmDisplay(out)
    d.update({ files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false })
    d.stop()
    const line = lastDrawn(out.text().trimEnd())
    assert.match(line, /0 B of 0 B \| 0\/0 files/)
    assert.doesNotMatch(out.text(), /NaN|Infinity/)
  })
})
