/**
 * The jail against a real attacker: names inside the root exchanged with
 * symlinks leading out (renameat2 RENAME_EXCHANGE, in a tight loop in
 * another process) while a client runs ls, stat, read, warm and evict over a
 * real socket. Nothing outside may ever be reported, read or opened: the
 * outside file has a size and contents of its own, the outside FIFO counts
 * every open of it for reading. And FIFOs inside the root are never opened
 * either: read refuses them, stat and ls only name them.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdirSync, realpathSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import type { Client } from '../../lib/client/client.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'
import { startSwapper } from '../helpers/swapper.js'

/** The outside file's size: no answer about anything inside may carry it. */
const BIG = 777_777
const MARK = 'SECRET-OUTSIDE'
const RACE_SECONDS = 3

const mkfifo = (path: string) => execFileSync('mkfifo', [path])

/**
 * base/root: file.txt; d/{x.bin, y.txt} exchanged with d-link → base/outside;
 *            a/big.bin exchanged with a/big-link → base/outside/big.bin
 * base/outside: big.bin and y.txt (BIG bytes, starting with MARK), x.bin (a FIFO), n00..n39.txt
 */
function raceTree(base: string) {
  const root = join(base, 'root')
  const outside = join(base, 'outside')
  const secret = Buffer.concat([Buffer.from(MARK), Buffer.alloc(BIG - MARK.length, 'S')])
  writeFile(outside, 'big.bin', secret)
  writeFile(outside, 'y.txt', secret)
  for (let i = 0; i < 40; i++) writeFile(outside, `n${String(i).padStart(2, '0')}.txt`, 'outside')
  mkfifo(join(outside, 'x.bin'))
  writeFile(root, 'file.txt', 'inside file')
  writeFile(root, 'd/x.bin', 'inside x')
  writeFile(root, 'd/y.txt', 'inside y')
  writeFile(root, 'a/big.bin', 'inside big')
  symlinkSync(outside, join(root, 'd-link'))
  symlinkSync(join(outside, 'big.bin'), join(root, 'a', 'big-link'))
  return { root, outside }
}

/** What went wrong, if anything, in one answer. */
type Check = (value: unknown) => string | null

const noBig: Check = (v) => (JSON.stringify(v).includes(String(BIG)) ? `reported the outside size: ${JSON.stringify(v)}` : null)

async function hammer(client: Client, until: Promise<unknown>, faults: string[], codes: Set<string>) {
  let over = false
  void until.finally(() => (over = true))
  const ops: [string, () => Promise<unknown>, Check][] = [
    ['ls a', () => client.ls('a'), noBig],
    ['ls d', () => client.ls('d'), (v) => ((v as { name: string }[]).some((e) => !['x.bin', 'y.txt'].includes(e.name)) ? `listed outside: ${JSON.stringify(v)}` : null)],
    ['ls root', () => client.ls(''), noBig],
    ['stat a/big.bin', () => client.stat('a/big.bin'), noBig],
    ['stat d/x.bin', () => client.stat('d/x.bin'), (v) => ((v as { type: string }).type !== 'file' ? `stat of the outside FIFO: ${JSON.stringify(v)}` : null)],
    ['stat d/y.txt', () => client.stat('d/y.txt'), noBig],
    ['read a/big.bin', () => client.readFile('a/big.bin'), (v) => ((v as Buffer).includes(MARK) ? 'read the outside file' : null)],
    ['read d/y.txt', () => client.readFile('d/y.txt'), (v) => ((v as Buffer).includes(MARK) ? 'read the outside file' : null)],
    ['read d/x.bin', () => client.readFile('d/x.bin'), () => null],
    ['warm root', () => client.warm(''), (v) => ((v as { totalBytes: number }).totalBytes >= BIG ? `warm counted outside bytes: ${JSON.stringify(v)}` : null)],
    ['warm d', () => client.warm('d'), (v) => ((v as { totalBytes: number }).totalBytes >= BIG ? `warm counted outside bytes: ${JSON.stringify(v)}` : null)],
    ['evict root', () => client.evict(''), (v) => ((v as { files: number }).files > 8 ? `evict visited outside files: ${JSON.stringify(v)}` : null)],
  ]
  await Promise.all(
    ops.map(async ([what, run, check]) => {
      while (!over) {
        try {
          const problem = check(await run())
          if (problem && faults.length < 10) faults.push(`${what}: ${problem}`)
        } catch (err) {
          codes.add(`${what}: ${(err as { code?: string }).code}`)
        }
      }
    }),
  )
}

describe('names exchanged with symlinks leading out of the root, while a client works', () => {
  test('nothing outside is ever reported, read or opened', { timeout: 30_000 }, async (t) => {
    const { root, outside } = raceTree(realpathSync(tempDir(t)))
    const { url } = await startServer(t, { root })
    const clients = [await connectTo(t, url), await connectTo(t, url)]
    const swapper = await startSwapper(
      t,
      [
        [join(root, 'd'), join(root, 'd-link')],
        [join(root, 'a', 'big.bin'), join(root, 'a', 'big-link')],
      ],
      [join(outside, 'x.bin')],
      RACE_SECONDS,
    )
    const faults: string[] = []
    const codes = new Set<string>()
    await Promise.all(clients.map((c) => hammer(c, swapper.done, faults, codes)))
    const report = await swapper.done
    assert.ok(report.swaps > 100, `the attacker swapped (${report.swaps} times)`)
    assert.deepEqual(faults, [])
    assert.equal(report.opens[join(outside, 'x.bin')], 0, 'the FIFO outside the root was never opened')
    // Refusals are the jail's: no request failed on a bug.
    assert.ok(![...codes].some((c) => c.endsWith('EINTERNAL') || c.endsWith('undefined')), [...codes].join(', '))
  })
})

describe('a FIFO inside the root', () => {
  test('is never opened: read refuses it (EACCES), stat and ls name it "other", warm skips it', { timeout: 30_000 }, async (t) => {
    const root = realpathSync(tempDir(t))
    writeFile(root, 'file.txt', 'inside')
    mkdirSync(join(root, 'sub'))
    mkfifo(join(root, 'pipe'))
    mkfifo(join(root, 'sub', 'pipe'))
    symlinkSync('pipe', join(root, 'pipe-link'))
    const { url } = await startServer(t, { root })
    const client = await connectTo(t, url)
    const swapper = await startSwapper(t, [], [join(root, 'pipe'), join(root, 'sub', 'pipe')], 1)
    for (const p of ['pipe', 'sub/pipe', 'pipe-link']) {
      await assert.rejects(client.readFile(p), { code: 'EACCES', message: `${p} is not a regular file` })
      assert.equal((await client.stat(p)).type, 'other', `stat ${p}`)
    }
    assert.deepEqual(
      (await client.ls('')).map((e) => `${e.name}:${e.type}`),
      ['file.txt:file', 'pipe:other', 'pipe-link:other', 'sub:dir'],
    )
    const w = await client.warm('')
    assert.equal(w.totalFiles, 1)
    const report = await swapper.done
    assert.deepEqual(report.opens, { [join(root, 'pipe')]: 0, [join(root, 'sub', 'pipe')]: 0 })
  })
})
