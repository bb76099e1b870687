/**
 * readPathList: the paths of a list file, or of stdin ("-"), one a line and
 * as they come; blank lines skipped, surrounding spaces trimmed.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { readPathList } from '../../lib/cli/path-list.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir } from '../helpers/fixtures.js'
import { poll, within } from '../helpers/wait.js'

const PATH_LIST = new URL('../../lib/cli/path-list.js', import.meta.url).href

function listFile(t: TestContext, text: string): string {
  const path = join(tempDir(t), 'list.txt')
  writeFileSync(path, text)
  return path
}

async function collect(list: string): Promise<string[]> {
  const paths: string[] = []
  for await (const p of readPathList(list)) paths.push(p)
  return paths
}

/** A child that prints each path of its stdin's list as soon as it has it; with `stopAfter`, leaves the loop after that many. */
function lister(t: TestContext, stopAfter = Infinity) {
  return child(t, `
    let n = 0
    for await (const path of readPathList('-')) {
      process.stdout.write(path + '\\n')
      if (++n >= ${stopAfter}) break
    }
  `)
}

/** A child running `body` with readPathList imported. */
function child(t: TestContext, body: string) {
  const script = `const { readPathList } = await import(${JSON.stringify(PATH_LIST)})\n${body}`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  child.stdin.on('error', () => {})
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, exited, out: () => out, err: () => err }
}

describe('readPathList', () => {
  test('gives one path a line, in order, skipping blank lines and trimming surrounding spaces and CRs', async (t) => {
    const list = listFile(t, 'a.bin\n\n  dir with space/b c.bin  \r\n\t\nünïcødé/名前.bin\r\n   \nlast')
    assert.deepEqual(await collect(list), ['a.bin', 'dir with space/b c.bin', 'ünïcødé/名前.bin', 'last'])
  })

  test('an empty list, or one of blank lines, gives nothing', async (t) => {
    assert.deepEqual(await collect(listFile(t, '')), [])
    assert.deepEqual(await collect(listFile(t, '\n  \n\r\n')), [])
  })

  test('a list file that is not there fails with ENOENT', async (t) => {
    await assert.rejects(collect(join(tempDir(t), 'missing.txt')), { code: 'ENOENT' })
  })

  test('a consumer that leaves early closes the file', async (t) => {
    const list = listFile(t, Array.from({ length: 100_000 }, (_, i) => `f${i}`).join('\n'))
    const before = fdCount()
    for await (const p of readPathList(list)) {
      assert.equal(p, 'f0')
      assert.ok(fdCount() > before, 'the list is open while it is read')
      break
    }
    assert.ok(await poll(() => fdCount() === before, 2000), `descriptors: ${fdCount()}, before ${before}`)
  })

  test('"-" reads stdin as it comes: each path is out before the list has ended', async (t) => {
    const p = lister(t)
    p.child.stdin.write('first\n')
    assert.ok(await poll(() => p.out() === 'first\n', 5000), `out: ${JSON.stringify(p.out())}; err: ${p.err()}`)
    p.child.stdin.write('  second \n\nthird')
    assert.ok(await poll(() => p.out() === 'first\nsecond\n', 5000), p.out())
    p.child.stdin.end('\n')
    assert.ok(await within(p.exited, 5000), 'the child exited at the end of its stdin')
    assert.deepEqual(await p.exited, [0, null])
    assert.equal(p.out(), 'first\nsecond\nthird\n')
  })

  test('"-" read in part: the process can exit while stdin stays open', async (t) => {
    const p = lister(t, 1)
    p.child.stdin.write('only\nnever read\n') // and never ended
    assert.ok(await within(p.exited, 5000), `the child is still running; out: ${JSON.stringify(p.out())}`)
    assert.deepEqual(await p.exited, [0, null], p.err())
    assert.equal(p.out(), 'only\n')
  })

  test('"-" given up while waiting for the next line: the wait ends, and the process can exit while stdin stays open', async (t) => {
    // As tar does when a file fails while it waits for the list's next path.
    const p = child(t, `
      const paths = readPathList('-')[Symbol.asyncIterator]()
      process.stdout.write((await paths.next()).value + '\\n')
      const waiting = paths.next()
      await paths.return()
      process.stdout.write(JSON.stringify(await waiting) + '\\n')
    `)
    p.child.stdin.write('first\n') // and no more, never ended
    assert.ok(await within(p.exited, 5000), `the child is still running; out: ${JSON.stringify(p.out())}`)
    assert.deepEqual(await p.exited, [0, null], p.err())
    assert.equal(p.out(), 'first\n{"done":true}\n')
  })
})
