/**
 * OpenAhead: while a walk waits on one directory, the next ones it will have
 * to open are opened too, at most eight ahead, counting those opened and not
 * yet taken. An open that fails surfaces only at its own entry; after stop
 * nothing more is started.
 */
import assert from 'node:assert/strict'
import { setImmediate as tick } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { Jail } from '../../lib/fs/jail.js'
import type { Listing } from '../../lib/fs/listing.js'
import { type Lister, plainLister } from '../../lib/fs/meta-cache.js'
import { OpenAhead, type Opened } from '../../lib/fs/open-ahead.js'
import { walk } from '../../lib/fs/walk.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'

const DIRS = Array.from({ length: 20 }, (_, i) => `d${String(i).padStart(2, '0')}`)

/** A root of 20 directories, one file in each, its jail, and the root's listing. */
async function tree(t: TestContext): Promise<{ jail: Jail; listing: Listing }> {
  const root = tempDir(t)
  for (const d of DIRS) writeFile(root, `${d}/f`, 1)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const top = await jail.lookup('')
  try {
    return { jail, listing: await plainLister.list(top, true) }
  } finally {
    top.close()
  }
}

/** An open whose answers the test gives: the entries asked for, in order, each settled by hand. */
function byHand(listing: Listing) {
  const calls: number[] = []
  const settle = new Map<number, { ok(): void; fail(err: Error): void }>()
  const open = (i: number) =>
    new Promise<Opened | null>((resolve, reject) => {
      calls.push(i)
      settle.set(i, { ok: () => resolve({ names: [listing.names[i]] }), fail: reject })
    })
  return { calls, settle, open }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)

describe('OpenAhead', () => {
  test('a take opens its entry and the next eight; opened entries not yet taken keep their places', async (t) => {
    const { listing } = await tree(t)
    const { calls, settle, open } = byHand(listing)
    const ahead = new OpenAhead(listing, open, () => true)
    const first = ahead.take(0)
    assert.deepEqual(calls, range(0, 9))
    for (const s of settle.values()) s.ok()
    assert.deepEqual(await first, { names: ['d00'] })
    await tick()
    assert.deepEqual(calls, range(0, 9), 'eight opened ahead and not taken: nothing more')
    assert.deepEqual(await ahead.take(1), { names: ['d01'] })
    assert.deepEqual(calls, range(0, 10), 'one taken, one more opened')
  })

  test('an entry the walk entered another way gives its place to the next', async (t) => {
    const { listing } = await tree(t)
    const { calls, settle, open } = byHand(listing)
    const ahead = new OpenAhead(listing, open, () => true)
    const first = ahead.take(0)
    for (const s of settle.values()) s.ok()
    await first
    assert.deepEqual(calls, range(0, 9))
    // Entries 1 and 2 came to be held by the metadata cache: the walk goes in through it.
    ahead.skip(1)
    ahead.skip(2)
    assert.deepEqual(calls, range(0, 11), 'their places go to entries 9 and 10')
    assert.deepEqual(await ahead.take(3), { names: ['d03'] })
    assert.deepEqual(calls, range(0, 12))
  })

  test('entries not wanted are not opened ahead, yet a take opens one', async (t) => {
    const { listing } = await tree(t)
    const { calls, open } = byHand(listing)
    // Odd entries stand for directories the metadata cache holds: the walk will not open them.
    const ahead = new OpenAhead(listing, open, (i) => i % 2 === 0)
    void ahead.take(0)
    assert.deepEqual(calls, [0, 2, 4, 6, 8, 10, 12, 14, 16])
    void ahead.take(1)
    assert.deepEqual(calls.slice(9), [1], 'asked for, so opened, and the eight ahead are still eight')
    void ahead.take(2)
    assert.deepEqual(calls.slice(10), [18])
    ahead.stop()
  })

  test('a failed open is thrown by the take of its entry, and only there', async (t) => {
    const { listing } = await tree(t)
    const { settle, open } = byHand(listing)
    const unhandled: unknown[] = []
    const note = (err: unknown) => unhandled.push(err)
    process.on('unhandledRejection', note)
    t.after(() => process.off('unhandledRejection', note))
    const ahead = new OpenAhead(listing, open, () => true)
    const first = ahead.take(0)
    const gone = Object.assign(new Error('d02 vanished'), { code: 'ENOENT' })
    settle.get(2)!.fail(gone)
    for (const [i, s] of settle) if (i !== 2) s.ok()
    await first
    await tick()
    assert.deepEqual(unhandled, [])
    assert.deepEqual(await ahead.take(1), { names: ['d01'] })
    await assert.rejects(ahead.take(2), (err) => err === gone)
    assert.deepEqual(await ahead.take(3), { names: ['d03'] }, 'the walk goes on after it')
  })

  test('after stop nothing is opened ahead, and opens under way may fail unseen', async (t) => {
    const { listing } = await tree(t)
    const { calls, settle, open } = byHand(listing)
    const unhandled: unknown[] = []
    const note = (err: unknown) => unhandled.push(err)
    process.on('unhandledRejection', note)
    t.after(() => process.off('unhandledRejection', note))
    const ahead = new OpenAhead(listing, open, () => true)
    const first = ahead.take(0)
    ahead.stop()
    settle.get(0)!.ok()
    for (const i of range(1, 9)) settle.get(i)!.fail(new Error('the walk was stopped'))
    assert.deepEqual(await first, { names: ['d00'] })
    const late = ahead.take(12)
    assert.deepEqual(calls, [...range(0, 9), 12], 'a take still opens its own entry, nothing after it')
    settle.get(12)!.ok()
    assert.deepEqual(await late, { names: ['d12'] })
    await tick()
    assert.deepEqual(unhandled, [])
  })
})

describe('a walk opens the directories ahead of it', () => {
  test('while one directory is slow, the next eight are listed meanwhile; files still come in walk order', async (t) => {
    const { jail } = await tree(t)
    // Listings of the subdirectories wait for the test: how many are waiting is how many were started.
    const waiting: (() => void)[] = []
    let held = true
    const lister: Lister = {
      ...plainLister,
      list: async (dir, withStats) => {
        if (held && dir.names.length > 0) await new Promise<void>((resolve) => waiting.push(resolve))
        return plainLister.list(dir, withStats)
      },
    }
    const files = (async () => {
      const out: string[] = []
      for await (const f of walk(jail, '', undefined, undefined, lister)) out.push(f.rel)
      return out
    })()
    assert.ok(await poll(() => waiting.length === 9), `${waiting.length} directories listed at once`)
    assert.equal(await poll(() => waiting.length > 9, 100), false, 'the one the walk waits on, and eight ahead of it')
    held = false
    // Released last first: the walk's order is its own, not the order the listings finish in.
    for (const go of waiting.splice(0).reverse()) go()
    assert.deepEqual(await files, DIRS.map((d) => `${d}/f`))
  })
})
