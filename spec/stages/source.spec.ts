/**
 * CommandSource, a connection's scheduler, on its own: parsed requests
 * (Inbound) are written to it and its items are read, over a real command
 * context (jail, block cache, known files, pins, settle) on a temp root, as
 * the server builds it. No pager or framer: what is tested is which items
 * come out, tagged how, in what order, within which limits.
 */
import assert from 'node:assert/strict'
import { readdirSync, readlinkSync } from 'node:fs'
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises'
import { describe, test, type TestContext } from 'node:test'
import { BlockCache } from '../../lib/cache/block-cache.js'
import { MemoryBudget } from '../../lib/cache/memory-budget.js'
import type { CommandContext } from '../../lib/commands/context.js'
import { error } from '../../lib/errors.js'
import { Jail } from '../../lib/fs/jail.js'
import { KnownFiles } from '../../lib/fs/known-files.js'
import { Settle } from '../../lib/fs/settle.js'
import { isUploadTemp } from '../../lib/fs/upload-temp.js'
import { MAX_UPLOADS_PER_CONNECTION } from '../../lib/protocol/constants.js'
import { Pins } from '../../lib/server/pins.js'
import type { Item } from '../../lib/stages/items.js'
import type { Inbound } from '../../lib/stages/request-parser.js'
import { MAX_RECORDS } from '../../lib/stages/resend-records.js'
import { CommandSource, type SourceOptions } from '../../lib/stages/source.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { poll } from '../helpers/wait.js'

const BLOCK = 8192
const PAGE = 2048
const MIN_PAGE = 512
const HELLO = { protocol: 1, spec: 'source' }
/** Requests parked behind maxInFlight beyond which the source holds its input (source.ts, MAX_PARKED). */
const MAX_PARKED = 32
/** Replies waiting for the reader beyond which the source holds its input (source.ts, MAX_QUEUED_REPLIES). */
const MAX_QUEUED_REPLIES = 64

/** A server's command context over a temp root holding `sizes` (path → random bytes), built as CacheServer builds it. */
async function context(t: TestContext, sizes: Record<string, number>, { writable = false } = {}) {
  const root = tempDir(t)
  const data: Record<string, Buffer> = {}
  for (const [rel, size] of Object.entries(sizes)) data[rel] = writeFile(root, rel, size)
  const jail = await Jail.open(root)
  t.after(() => jail.close())
  const memory = new MemoryBudget(256 * BLOCK)
  const cache = new BlockCache({ limit: 1024 * BLOCK, blockSize: BLOCK, policy: 'lru', memory })
  // Files written just before they are read: no settle wait (as spec/helpers/server.ts).
  const settle = new Settle(0)
  const ctx: CommandContext = { jail, cache, files: new KnownFiles(jail), pins: new Pins(jail, cache, settle), settle, checksum: 'crc32', writable, stats: () => ({}) }
  return { root, data, ctx, memory }
}

/** This process's descriptors open on files under `root` (not the root itself): the jobs' files. */
function openUnder(root: string): number {
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${root}/`)) n++
    } catch {
      // closed meanwhile
    }
  }
  return n
}

/** Every descriptor of the root's files closed, and the process back to `base` descriptors. */
async function fdsReleased(root: string, base: number): Promise<void> {
  assert.ok(await poll(() => openUnder(root) === 0, 2000), `${openUnder(root)} files under the root still open`)
  assert.ok(await poll(() => fdCount() <= base, 2000), `file descriptors back to ${base}: ${fdCount()}`)
}

function makeSource(t: TestContext, ctx: CommandContext, opts: Partial<SourceOptions> = {}): CommandSource {
  const source = new CommandSource(ctx, { hello: HELLO, pageSize: PAGE, minPageSize: MIN_PAGE, ...opts })
  t.after(() => source.destroy())
  return source
}

const req = (id: number, op: string, args: Record<string, unknown> = {}): Inbound => ({ id, op, args })
const read = (id: number, path: string, args: Record<string, unknown> = {}) => req(id, 'read', { path, ...args })

/** Bounded: a test fails, it does not hang. */
async function bounded<T>(p: Promise<T>, ms = 5000, what = 'the source'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms)))
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Reads the source one item at a time (paused mode: the source makes parts
 * only as they are taken), releasing each DATA part's lease as the framer
 * would once its bytes are written.
 */
function reader(source: CommandSource) {
  // Not destroyed when its output ends: the tests look at the source afterwards.
  const it = source.iterator({ destroyOnReturn: false }) as AsyncIterator<Item>
  const all: Item[] = []
  let ended = false
  const next = async (): Promise<Item | null> => {
    if (ended) return null
    const r = await bounded(it.next(), 5000, `the source (after ${summary(all).slice(-12).join(' ')}; ${all.length} items)`)
    if (r.done) {
      ended = true
      return null
    }
    const item = r.value
    if (item.kind === 'data') item.lease?.release()
    all.push(item)
    return item
  }
  return {
    all,
    get ended() {
      return ended
    },
    next,
    /** Read until `pred` holds for an item; returns it. */
    async until(pred: (item: Item) => boolean): Promise<Item> {
      for (;;) {
        const item = await next()
        if (item === null) throw new Error(`the output ended before the item looked for; got ${summary(all).join(' ')}`)
        if (pred(item)) return item
      }
    },
    /** Read to the end of the output; returns the items read by this call. */
    async rest(): Promise<Item[]> {
      const from = all.length
      while ((await next()) !== null);
      return all.slice(from)
    },
  }
}

/** Items without their bytes, for assertion messages. */
function summary(items: Item[]): string[] {
  return items.map((i) => `${i.id}:${i.kind}${'attempt' in i && i.attempt ? `@${i.attempt}` : ''}`)
}

const of = (items: Item[], id: number) => items.filter((i) => i.id === id)
const kinds = (items: Item[]) => items.map((i) => i.kind)
function bytes(items: Item[]): Buffer {
  return Buffer.concat(items.flatMap((i) => (i.kind === 'data' ? [i.chunk] : [])))
}
function errorOf(items: Item[], id: number): { code: string; message: string; attempt?: number } | undefined {
  const e = items.find((i) => i.id === id && i.kind === 'error')
  return e && e.kind === 'error' ? { ...e.body, attempt: e.attempt } : undefined
}

/** Write and wait for the write's callback (the source took the request). */
function put(source: CommandSource, inbound: Inbound): Promise<void> {
  return new Promise((resolve, reject) => source.write(inbound, (err) => (err ? reject(err) : resolve())))
}

describe('CommandSource', { timeout: 30_000 }, () => {
  test('HELLO comes first; each response\'s START, DATA and END carry its id; the output ends after the last response once the input has ended', async (t) => {
    const { ctx, data } = await context(t, { a: 3 * BLOCK + 100, 'd/b': 2 * BLOCK })
    const source = makeSource(t, ctx)
    let finished = false
    source.on('finish', () => (finished = true))
    source.write(read(1, 'a'))
    source.write(read(2, 'd/b', { offset: 10, length: 5000 }))
    // The input ends before a single part is taken: the responses must still come out whole.
    source.end()
    const out = reader(source)
    const items = await out.rest()
    assert.deepEqual(items[0], { id: 0, kind: 'hello', body: HELLO })
    assert.ok(out.ended)
    assert.ok(finished, "the input's end was acknowledged once every response was out")
    for (const [id, path, from, length] of [[1, 'a', 0, 3 * BLOCK + 100], [2, 'd/b', 10, 5000]] as const) {
      const mine = of(items, id)
      const k = kinds(mine)
      assert.equal(k[0], 'start', `request ${id} starts with START: ${summary(mine)}`)
      assert.equal(k.at(-1), 'end', `request ${id} ends with END`)
      assert.ok(k.slice(1, -1).every((x) => x === 'data'), `only DATA in between: ${summary(mine)}`)
      assert.deepEqual((mine[0] as { body: Record<string, unknown> }).body, { size: data[path].length, offset: from, length, mtimeMs: (mine[0] as { body: { mtimeMs: number } }).body.mtimeMs })
      assert.deepEqual(mine.at(-1), { id, attempt: 0, kind: 'end', body: { length } })
      assert.ok(bytes(mine).equals(data[path].subarray(from, from + length)), `request ${id}'s bytes`)
      for (const d of mine) if (d.kind === 'data') assert.equal(d.pageSize, PAGE)
    }
    assert.equal(items.length, 1 + of(items, 1).length + of(items, 2).length, 'nothing but HELLO and the two responses')
  })

  test('at most maxInFlight requests run at once; the others are parked and start in order as slots free', async (t) => {
    const files = Object.fromEntries([1, 2, 3, 4, 5].map((i) => [`f${i}`, 4 * BLOCK + i]))
    const { ctx, data } = await context(t, files)
    const source = makeSource(t, ctx, { maxInFlight: 2 })
    for (let i = 1; i <= 5; i++) source.write(read(i, `f${i}`))
    source.end()
    await tick()
    assert.equal(source.inFlight, 5, 'two running and three parked, all counted')
    assert.equal(source.working, 5)
    const items = await reader(source).rest()
    const open = new Set<number>()
    let most = 0
    const starts: number[] = []
    for (const item of items) {
      if (item.kind === 'start') {
        open.add(item.id)
        starts.push(item.id)
      }
      if (item.kind === 'data') assert.ok(open.has(item.id), `DATA of ${item.id} inside its response`)
      most = Math.max(most, open.size)
      if (item.kind === 'end' || item.kind === 'error') open.delete(item.id)
    }
    assert.equal(most, 2, `never more than two responses open at once, and two were: ${summary(items)}`)
    // The first two start at once (either may open its file first); the parked ones only after.
    assert.deepEqual([...starts.slice(0, 2).sort(), ...starts.slice(2).sort()], [1, 2, 3, 4, 5], `the first two run first: ${starts}`)
    for (let i = 1; i <= 5; i++) assert.ok(bytes(of(items, i)).equals(data[`f${i}`]), `request ${i} whole`)
    assert.equal(source.inFlight, 0)
  })

  test(`${MAX_PARKED} parked requests hold the input: the next write's callback waits until a job ends`, async (t) => {
    const { ctx, data } = await context(t, { a: 2 * BLOCK, small: 100 })
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const done: number[] = []
    const total = MAX_PARKED + 3
    for (let id = 1; id <= total; id++) source.write(id === 1 ? read(id, 'a') : read(id, 'small'), () => done.push(id))
    // Nothing is read: request 1 runs, 2..33 park; the write that parks the 32nd is not acknowledged.
    assert.ok(await poll(() => done.length >= MAX_PARKED, 2000))
    await sleep(30)
    assert.deepEqual(done, Array.from({ length: MAX_PARKED }, (_, i) => i + 1), 'requests 1..32 taken, the 33rd held, the rest not even offered')
    assert.equal(source.inFlight, 1 + MAX_PARKED)
    source.end()
    const items = await reader(source).rest()
    assert.equal(done.length, total, 'every write acknowledged once jobs ended')
    assert.ok(bytes(of(items, 1)).equals(data.a))
    for (let id = 2; id <= total; id++) assert.deepEqual(of(items, id).at(-1), { id, attempt: 0, kind: 'end', body: { length: 100 } })
  })

  test(`${MAX_QUEUED_REPLIES} replies waiting for the reader hold the input too (HELLO counts)`, async (t) => {
    const { ctx } = await context(t, {})
    const source = makeSource(t, ctx)
    const done: number[] = []
    const total = MAX_QUEUED_REPLIES + 4
    for (let id = 1; id <= total; id++) source.write(req(id, 'nope'), () => done.push(id))
    const taken = MAX_QUEUED_REPLIES - 2 // HELLO + 62 errors = 63; the 63rd error makes 64 and is held
    assert.ok(await poll(() => done.length >= taken, 2000))
    await sleep(30)
    assert.equal(done.length, taken, `held at ${taken}: ${done.length}`)
    source.end()
    const items = await reader(source).rest()
    assert.equal(done.length, total)
    assert.equal(items.length, 1 + total)
    for (let id = 1; id <= total; id++) assert.equal(errorOf(items, id)?.code, 'EBADREQ')
    assert.match(errorOf(items, 1)!.message, /unknown command "nope"; known: read, readv/)
  })

  test('reads in flight take turns: their DATA parts interleave, round-robin', async (t) => {
    const { ctx, data } = await context(t, { one: 8 * BLOCK, two: 8 * BLOCK, three: 8 * BLOCK })
    const source = makeSource(t, ctx)
    const out = reader(source)
    // Once from disk, so that the second time the reads come from the cache, each with its next
    // part made whenever the scheduler looks: the order is then the scheduler's alone, not the disk's.
    source.write(read(1, 'one'))
    source.write(read(2, 'two'))
    source.write(read(3, 'three'))
    const ends = new Set<number>()
    await out.until((i) => i.kind === 'end' && ends.add(i.id).size === 3)
    const from = out.all.length
    source.write(read(4, 'one'))
    source.write(read(5, 'two'))
    source.write(read(6, 'three'))
    source.end()
    // Taken slowly: every job asked for a part has made it before the next is taken.
    for (let item = await out.next(); item; item = await out.next()) await sleep(1)
    const items = out.all.slice(from)
    const order = items.filter((i) => i.kind === 'data').map((i) => i.id)
    assert.equal(order.length, 24, 'a DATA part per block (whole pages of one block)')
    // In turn: each read has its first part among the first three or four, and then one every
    // third or so; one read after the other, or the last served first, would leave a read waiting.
    for (const id of [4, 5, 6]) {
      const at = order.flatMap((x, i) => (x === id ? [i] : []))
      assert.ok(at[0] <= 3, `read ${id} is not kept waiting for the others: ${order.join(' ')}`)
      for (let i = 1; i < at.length; i++) assert.ok(at[i] - at[i - 1] <= 3, `read ${id} takes its turn: ${order.join(' ')}`)
    }
    for (const [id, path] of [[4, 'one'], [5, 'two'], [6, 'three']] as const) assert.ok(bytes(of(items, id)).equals(data[path]))
  })

  test('cancel stops a running read: ECANCELED, nothing more of it, its file closed and its slot given to the next request', async (t) => {
    const { ctx, data, root } = await context(t, { big: 32 * BLOCK, small: 3000 })
    const base = fdCount()
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const out = reader(source)
    source.write(read(1, 'big'))
    source.write(read(2, 'small'))
    await out.until((i) => i.id === 1 && i.kind === 'data')
    assert.equal(openUnder(root), 1, 'the read holds its file open')
    source.write(req(1, 'cancel'))
    const cancelled = await out.until((i) => i.kind === 'error')
    assert.deepEqual({ id: cancelled.id, ...(cancelled as { body: object }).body }, { id: 1, code: 'ECANCELED', message: 'request 1 cancelled by the client' })
    await out.until((i) => i.id === 2 && i.kind === 'end')
    // Cancelling a finished request does nothing; a NACK of the cancelled one finds it forgotten.
    source.write(req(2, 'cancel'))
    source.write(req(1, 'nack', { seq: 3, offset: 2 * PAGE, resync: 1 }))
    source.end()
    await out.rest()
    const items = out.all
    const at = items.indexOf(cancelled)
    const after = of(items.slice(at + 1), 1)
    assert.deepEqual(after.map((i) => [i.kind, (i as { body: { code?: string } }).body.code]), [['error', 'ECORRUPT']], `after ECANCELED only the NACK's answer: ${summary(after)}`)
    assert.match(errorOf(items.slice(at + 1), 1)!.message, /cannot resend request 1: this connection no longer knows it/)
    assert.equal(errorOf(items.slice(at + 1), 1)!.attempt, 1)
    assert.ok(!of(items, 1).some((i) => i.kind === 'end'), 'no END for the cancelled read')
    assert.ok(bytes(of(items, 1)).length < data.big.length, 'not all of it was sent')
    assert.ok(bytes(of(items, 2)).equals(data.small), 'the parked read ran in the freed slot')
    assert.equal(of(items, 2).filter((i) => i.kind === 'error').length, 0, 'cancelling a finished request is not answered')
    await fdsReleased(root, base)
  })

  test('a parked request: cancel answers it at once; a NACK makes it start behind a RESYNC in that epoch', async (t) => {
    const { ctx, data } = await context(t, { big: 32 * BLOCK, small: 3000 })
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const attempts = source.attempts
    const out = reader(source)
    source.write(read(1, 'big'))
    source.write(read(2, 'small'))
    source.write(read(3, 'small'))
    await out.until((i) => i.id === 1 && i.kind === 'start')
    source.write(req(2, 'nack', { seq: 0, offset: 0, resync: 5 }))
    source.write(req(3, 'cancel'))
    const cancelled = await out.until((i) => i.id !== 1)
    assert.deepEqual(cancelled, { id: 3, kind: 'error', body: { code: 'ECANCELED', message: 'request 3 cancelled by the client' }, attempt: undefined })
    source.end()
    const items = out.all
    await out.rest()
    const first = of(items, 1)
    assert.ok(items.indexOf(cancelled) < items.indexOf(first.at(-1)!), 'answered while request 1 still ran')
    assert.ok(bytes(first).equals(data.big))
    const second = of(items, 2)
    assert.ok(items.indexOf(second[0]) > items.indexOf(first.at(-1)!), 'request 2 still waited for the slot')
    assert.deepEqual(second[0], { id: 2, attempt: 5, kind: 'resync', body: { resync: 5, seq: 0, offset: 0, pageSize: PAGE } }, 'nothing was sent, so nothing is lost: the page size stays')
    assert.deepEqual(second.map((i) => [i.kind, (i as { attempt?: number }).attempt]).filter(([k]) => k !== 'data'), [['resync', 5], ['start', 5], ['end', 5]])
    assert.ok(bytes(second).equals(data.small))
    assert.equal(attempts.get(2), 5)
    assert.deepEqual(of(items, 3), [cancelled], 'the cancelled one never ran')
  })

  test('a NACK resends a running read from its offset: RESYNC, the same range, half the page size', async (t) => {
    const { ctx, data } = await context(t, { f: 10 * BLOCK })
    let nacks = 0
    const source = makeSource(t, ctx, { onNack: () => nacks++ })
    const attempts = source.attempts
    const out = reader(source)
    const [from, length] = [1000, 5 * BLOCK]
    source.write(read(1, 'f', { offset: from, length }))
    await out.until((i) => i.id === 1 && i.kind === 'data')
    const offset = 3000
    source.write(req(1, 'nack', { seq: 2, offset, resync: 7 }))
    source.end()
    const items = await out.rest()
    assert.equal(nacks, 1)
    assert.equal(attempts.get(1), 7, 'the current attempt is published for the pager')
    const at = items.findIndex((i) => i.kind === 'resync')
    assert.notEqual(at, -1, `a RESYNC: ${summary(out.all)}`)
    assert.deepEqual(items[at], { id: 1, attempt: 7, kind: 'resync', body: { resync: 7, seq: 2, offset, pageSize: PAGE / 2 } })
    const resent = of(items.slice(at + 1), 1)
    assert.ok(resent.every((i) => 'attempt' in i && i.attempt === 7), `nothing of the old attempt after the RESYNC: ${summary(resent)}`)
    assert.deepEqual(kinds(resent).filter((k) => k !== 'data'), ['end'], 'no START again (seq is past it), one END')
    assert.deepEqual(resent.at(-1), { id: 1, attempt: 7, kind: 'end', body: { length } }, 'END of the range the request asked for')
    assert.ok(bytes(resent).equals(data.f.subarray(from + offset, from + length)), 'the range resumes at the NACK\'s offset, within the request\'s own offset and length')
    const first = resent.find((i) => i.kind === 'data')!
    assert.equal((first as { pageSize?: number }).pageSize, PAGE / 2, 'DATA goes out in pages of half the size')
  })

  test('a NACK of a finished read resends it whole, START included', async (t) => {
    const { ctx, data } = await context(t, { f: 3 * BLOCK + 5 })
    const source = makeSource(t, ctx)
    const out = reader(source)
    source.write(read(1, 'f'))
    await out.until((i) => i.id === 1 && i.kind === 'end')
    source.write(req(1, 'nack', { seq: 0, offset: 0, resync: 1 }))
    source.end()
    const again = of(await out.rest(), 1)
    assert.deepEqual(again[0], { id: 1, attempt: 1, kind: 'resync', body: { resync: 1, seq: 0, offset: 0, pageSize: PAGE / 2 } })
    assert.deepEqual(kinds(again).filter((k) => k !== 'data'), ['resync', 'start', 'end'])
    assert.ok(bytes(again).equals(data.f))
  })

  test('NACKs without progress at the smallest page size give up with ECORRUPT after `retries`', async (t) => {
    const { ctx } = await context(t, { f: 2 * BLOCK })
    const source = makeSource(t, ctx, { retries: 2 })
    const out = reader(source)
    source.write(read(1, 'f'))
    await out.until((i) => i.id === 1 && i.kind === 'end')
    // 2048 → 1024 → 512 (the floor) → 512 (1 failure at the floor) → 2 failures: give up.
    const pages: number[] = []
    for (let resync = 1; resync <= 3; resync++) {
      source.write(req(1, 'nack', { seq: 0, offset: 0, resync }))
      const r = await out.until((i) => i.kind === 'resync' || i.kind === 'error')
      assert.equal(r.kind, 'resync', `NACK ${resync} is resent: ${summary(out.all)}`)
      pages.push((r as { body: { pageSize: number } }).body.pageSize)
      await out.until((i) => i.id === 1 && i.kind === 'end')
    }
    assert.deepEqual(pages, [1024, 512, 512])
    source.write(req(1, 'nack', { seq: 0, offset: 0, resync: 4 }))
    const last = await out.until((i) => i.kind === 'resync' || i.kind === 'error')
    assert.deepEqual(last, {
      id: 1,
      attempt: 4,
      kind: 'error',
      body: { code: 'ECORRUPT', message: `request 1 failed its checksums 2 times in a row at the smallest page size (${MIN_PAGE} bytes); giving up` },
    })
    source.end()
    assert.deepEqual(await out.rest(), [], 'nothing after it')
  })

  test(`a NACK of a request older than the ${MAX_RECORDS} remembered is answered ECORRUPT`, async (t) => {
    const { ctx } = await context(t, { f: 100 })
    const source = makeSource(t, ctx)
    const items: Item[] = []
    source.on('data', (item: Item) => {
      if (item.kind === 'data') item.lease?.release()
      items.push(item)
    })
    const ended = new Promise((resolve) => source.on('end', resolve))
    for (let id = 1; id <= MAX_RECORDS + 1; id++) await bounded(put(source, read(id, 'f')))
    // All finished: the NACKs below find no request running or parked.
    assert.ok(await poll(() => items.filter((i) => i.kind === 'end').length === MAX_RECORDS + 1))
    await put(source, req(2, 'nack', { seq: 0, offset: 0, resync: 1 }))
    await put(source, req(1, 'nack', { seq: 0, offset: 0, resync: 1 }))
    source.end()
    await bounded(ended)
    assert.equal(items.filter((i) => i.kind === 'end').length, MAX_RECORDS + 2, 'all the reads, and request 2 resent')
    assert.deepEqual(errorOf(items, 1), { code: 'ECORRUPT', message: 'cannot resend request 1: this connection no longer knows it', attempt: 1 })
  })

  describe('auth', () => {
    for (const [name, first, why] of [
      ['a first request that is not auth', read(1, 'f'), 'this server needs a token: pass --token or set CACHESERV_TOKEN'],
      ['a wrong token', req(1, 'auth', { token: 'wrong' }), 'the server refused the token'],
      ['an auth without a token', req(1, 'auth'), 'auth without a token'],
    ] as const) {
      test(`with a token, ${name} is answered EAUTH on id 0 and the output ends; nothing after it runs`, async (t) => {
        const { ctx } = await context(t, { f: 100 })
        const source = makeSource(t, ctx, { token: 'sesame' })
        source.write(first)
        source.write(req(2, 'auth', { token: 'sesame' }))
        source.write(read(3, 'f'))
        // The input is not ended: the source ends its output by itself.
        const items = await reader(source).rest()
        assert.deepEqual(items, [
          { id: 0, kind: 'hello', body: HELLO },
          { id: 0, kind: 'error', body: { code: 'EAUTH', message: why }, attempt: undefined },
        ])
        assert.ok(source.readableEnded && !source.destroyed, 'the output ended by itself')
      })
    }

    test('with a token, the right one opens the connection; a second auth is refused', async (t) => {
      const { ctx, data } = await context(t, { f: 3000 })
      const source = makeSource(t, ctx, { token: 'sesame' })
      source.write(req(5, 'auth', { token: 'sesame' }))
      source.write(read(6, 'f'))
      source.write(req(7, 'auth', { token: 'sesame' }))
      source.end()
      const items = await reader(source).rest()
      assert.deepEqual(items[1], { id: 5, kind: 'result', body: { auth: 'ok' } })
      assert.ok(bytes(of(items, 6)).equals(data.f))
      assert.equal(of(items, 6).at(-1)!.kind, 'end')
      assert.deepEqual(errorOf(items, 7), { code: 'EBADREQ', message: 'auth is only the first request, on a server that asks for it: this connection is authenticated already', attempt: undefined })
    })

    test('without a token, auth is refused and the connection goes on', async (t) => {
      const { ctx } = await context(t, { f: 10 })
      const source = makeSource(t, ctx)
      source.write(req(1, 'auth', { token: 'x' }))
      source.write(read(2, 'f'))
      source.end()
      const items = await reader(source).rest()
      assert.equal(errorOf(items, 1)?.code, 'EBADREQ')
      assert.match(errorOf(items, 1)!.message, /this server needs no token/)
      assert.equal(of(items, 2).at(-1)!.kind, 'end')
    })
  })

  test('refuseNewRequests: the running read finishes; parked and new requests get ESHUTDOWN', async (t) => {
    const { ctx, data } = await context(t, { big: 8 * BLOCK, small: 10 })
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const out = reader(source)
    source.write(read(1, 'big'))
    source.write(read(2, 'small'))
    await out.until((i) => i.id === 1 && i.kind === 'start')
    source.refuseNewRequests()
    source.write(read(3, 'small'))
    source.write(req(4, 'stat', { path: 'small' }))
    source.end()
    const items = await out.rest()
    const shutdown = { code: 'ESHUTDOWN', message: 'the server is shutting down; connect to it again once it is back', attempt: undefined }
    for (const id of [2, 3, 4]) {
      assert.deepEqual(errorOf(items, id), shutdown, `request ${id}`)
      assert.equal(of(items, id).length, 1, `request ${id}: the error alone`)
    }
    assert.ok(bytes(of(out.all, 1)).equals(data.big), 'the running read was sent whole')
    assert.equal(of(out.all, 1).at(-1)!.kind, 'end')
    assert.ok(out.ended)
  })

  test(`at most ${MAX_UPLOADS_PER_CONNECTION} uploads at once (EBUSY beyond); they take no read slot; destroy() removes their temp files`, async (t) => {
    const { ctx, root, data } = await context(t, { f: 3000 }, { writable: true })
    const base = fdCount()
    const temps = () => readdirSync(root).filter(isUploadTemp).length
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const out = reader(source)
    for (let id = 1; id <= MAX_UPLOADS_PER_CONNECTION + 1; id++) source.write(req(id, 'write', { path: `up${id}` }))
    source.write(read(20, 'f'))
    const busy = await out.until((i) => i.kind === 'error')
    assert.deepEqual({ id: busy.id, ...(busy as { body: object }).body }, {
      id: MAX_UPLOADS_PER_CONNECTION + 1,
      code: 'EBUSY',
      message: `${MAX_UPLOADS_PER_CONNECTION} uploads are already running on this connection; send this write when one is done`,
    })
    await out.until((i) => i.id === 20 && i.kind === 'end')
    assert.ok(bytes(of(out.all, 20)).equals(data.f), 'the read ran beside the uploads, with maxInFlight 1')
    assert.ok(await poll(() => temps() === MAX_UPLOADS_PER_CONNECTION, 2000), `every upload opened its temp file: ${temps()}`)
    // One upload cancelled (it answers ECANCELED itself) makes room for one more, not two.
    source.write(req(1, 'cancel'))
    assert.deepEqual((await out.until((i) => i.id === 1)) as { body: unknown }, { id: 1, kind: 'error', body: { code: 'ECANCELED', message: 'request 1 cancelled by the client' }, attempt: undefined })
    source.write(req(30, 'write', { path: 'up30' }))
    source.write(req(31, 'write', { path: 'up31' }))
    const next = await out.until((i) => i.kind === 'error')
    assert.equal(next.id, 31, `the 31st is refused, the 30th taken: ${summary(out.all)}`)
    assert.equal((next as { body: { code: string } }).body.code, 'EBUSY')
    assert.ok(await poll(() => openUnder(root) === MAX_UPLOADS_PER_CONNECTION, 2000), `each upload holds its temp file open: ${openUnder(root)}`)
    source.destroy()
    assert.ok(await poll(() => temps() === 0, 2000), `the uploads' temp files removed: ${temps()} left`)
    await fdsReleased(root, base)
  })

  test('fail(err): what is queued goes out, then the error on id 0, then the end; every job stops and its file closes', async (t) => {
    const files = Object.fromEntries([1, 2, 3, 4].map((i) => [`f${i}`, 32 * BLOCK]))
    const { ctx, root } = await context(t, files)
    const base = fdCount()
    const source = makeSource(t, ctx, { maxInFlight: 2 })
    const out = reader(source)
    for (let i = 1; i <= 4; i++) source.write(read(i, `f${i}`))
    await out.until((i) => i.id === 1 && i.kind === 'data')
    await out.until((i) => i.id === 2 && i.kind === 'data')
    assert.equal(openUnder(root), 2, 'both running reads hold their files, the parked ones none')
    source.fail(error('ETIMEDOUT', 'the client was too slow taking answers'))
    source.write(read(9, 'f1'))
    const rest = await out.rest()
    assert.deepEqual(rest.at(-1), { id: 0, kind: 'error', body: { code: 'ETIMEDOUT', message: 'the client was too slow taking answers' }, attempt: undefined })
    assert.ok(rest.slice(0, -1).every((i) => (i.id === 1 || i.id === 2) && i.kind === 'data'), `before it, only parts made already: ${summary(rest)}`)
    assert.ok(rest.length <= 4, `at most a few parts were made ahead: ${summary(rest)}`)
    assert.ok(!out.all.some((i) => i.kind === 'end' || i.id >= 3), 'no response finished, none started after')
    await fdsReleased(root, base)
    assert.equal(source.inFlight, 0)
  })

  test('destroy() stops every job, closes its files and lets a held write go', async (t) => {
    const { ctx, root } = await context(t, { big: 32 * BLOCK, small: 10 })
    const base = fdCount()
    const source = makeSource(t, ctx, { maxInFlight: 1 })
    const out = reader(source)
    source.write(read(1, 'big'))
    await out.until((i) => i.id === 1 && i.kind === 'data')
    assert.equal(openUnder(root), 1, 'the read holds its file open')
    const done: number[] = []
    const refused: number[] = []
    // 2..33 park (the 33rd makes 32 parked: its callback is held); 34 waits in the stream's buffer.
    for (let id = 2; id <= MAX_PARKED + 2; id++) source.write(read(id, 'small'), (err) => (err ? refused : done).push(id))
    assert.ok(await poll(() => done.length === MAX_PARKED - 1, 2000))
    await sleep(20)
    assert.equal(done.length, MAX_PARKED - 1, 'the write that parked the 32nd is held')
    source.destroy()
    await poll(() => done.length === MAX_PARKED, 2000)
    assert.deepEqual(done.at(-1), MAX_PARKED + 1, 'the held write was let go')
    assert.deepEqual(refused, [MAX_PARKED + 2], 'the one never taken is failed by the stream')
    assert.equal(out.all.filter((i) => i.id !== 1 && i.id !== 0).length, 0, 'no parked request ran')
    assert.equal(source.inFlight, 0)
    await fdsReleased(root, base)
  })
})
