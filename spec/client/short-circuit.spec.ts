/**
 * SlabFiles, how a client on the server's host reads located blocks: each
 * block's part of a file or range from its slab file (each slab opened once,
 * until close), the bytes trusted only when read within the grant's time
 * less a margin; blocks that do not add up to what was located are EPROTO,
 * a slab that ends early EIO. Real slab files in a temp directory stand in
 * for the server's store: a slab is a plain file of blocks.
 */
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { type LocateAnswer, type LocatedBlock, SlabFiles, TTL_MARGIN_MS } from '../../lib/client/short-circuit.js'
import { fdCount } from '../helpers/fds.js'
import { tempDir } from '../helpers/fixtures.js'

const BLOCK = 1000

/** Block until `ms` have passed: a reader that is slow between blocks. */
function block(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/**
 * Two slabs of four blocks each, and a file of `size` bytes laid out in
 * them out of order, its last block short: what a locate answer says.
 */
function store(t: TestContext, size = 3 * BLOCK + 250) {
  const dir = tempDir(t)
  const slabs = ['slab-1-0', 'slab-1-1']
  const contents = slabs.map(() => randomBytes(4 * BLOCK))
  slabs.forEach((name, i) => writeFileSync(join(dir, name), contents[i]))
  const file = Buffer.alloc(size)
  const blocks: LocatedBlock[] = []
  const places: [number, number][] = [[1, 2], [0, 0], [1, 0], [0, 3]]
  for (let i = 0, at = 0; at < size; i++, at += BLOCK) {
    const [slab, slot] = places[i]
    const length = Math.min(BLOCK, size - at)
    contents[slab].copy(file, at, slot * BLOCK, slot * BLOCK + length)
    blocks.push([slab, slot * BLOCK, length, 0])
  }
  const answer = (ttl = 30_000): LocateAnswer => ({ lease: 1, ttl, dir, slabs, files: [] })
  return { dir, file, blocks, answer }
}

describe('SlabFiles.read', () => {
  test('joins a file\'s blocks from their slabs, in order', (t) => {
    const { file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    const got = slabs.read(answer(), { path: 'f', size: file.length, blocks }, performance.now())
    assert.ok(got?.equals(file))
  })

  test('a range: from `skip` bytes into its first block, `length` bytes long', (t) => {
    const { file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    // The range 1200..2700 of the file: its blocks 1 and 2, starting 200 bytes into block 1.
    const got = slabs.read(answer(), { path: 'f', size: file.length, blocks: blocks.slice(1, 3), skip: 200, length: 1500 }, performance.now())
    assert.ok(got?.equals(file.subarray(1200, 2700)))
    const inOne = slabs.read(answer(), { path: 'f', size: file.length, blocks: blocks.slice(0, 1), skip: 10, length: 20 }, performance.now())
    assert.ok(inOne?.equals(file.subarray(10, 30)))
    const pastFirst = slabs.read(answer(), { path: 'f', size: file.length, blocks: blocks.slice(0, 3), skip: 1200, length: 500 }, performance.now())
    assert.ok(pastFirst?.equals(file.subarray(1200, 1700)), 'a skip past the first block skips it whole')
  })

  test('null once the grant is too near its end for the bytes to be trusted', (t) => {
    const { file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    const ttl = 5000
    const located = { path: 'f', size: file.length, blocks }
    assert.equal(slabs.read(answer(ttl), located, performance.now() - (ttl - TTL_MARGIN_MS) - 50), null)
    assert.ok(slabs.read(answer(ttl), located, performance.now() - (ttl - TTL_MARGIN_MS) + 1000)?.equals(file))
  })

  test('blocks that hold fewer bytes than located: EPROTO; a slab that ends early: EIO', (t) => {
    const { dir, file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    assert.throws(() => slabs.read(answer(), { path: 'f', size: file.length, blocks: blocks.slice(0, 3) }, performance.now()), {
      code: 'EPROTO',
      message: `f: ${file.length} bytes located, ${3 * BLOCK} in its blocks`,
    })
    writeFileSync(join(dir, 'slab-1-2'), Buffer.alloc(BLOCK / 2))
    const a = { ...answer(), slabs: ['slab-1-2'] }
    assert.throws(() => slabs.read(a, { path: 'f', size: BLOCK, blocks: [[0, 0, BLOCK, 0]] }, performance.now()), { code: 'EIO', message: 'f: the shared-memory store ended early' })
  })
})

describe('SlabFiles.stream', () => {
  test('hands each block\'s part to move: its length, the slab\'s descriptor and the offset there', (t) => {
    const { file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    const pieces: Buffer[] = []
    const n = slabs.stream(answer(), { path: 'f', size: file.length, blocks: blocks.slice(1), skip: 300, length: 1900 }, performance.now(), (length, fd, offset) => {
      const piece = Buffer.alloc(length)
      assert.equal(readSync(fd, piece, 0, length, offset), length)
      pieces.push(piece)
    })
    assert.equal(n, 1900)
    assert.deepEqual(pieces.map((p) => p.length), [700, 1000, 200])
    assert.ok(Buffer.concat(pieces).equals(file.subarray(1300, 3200)))
  })

  test('stops before a block once the grant is too near its end; returns the bytes handed on', (t) => {
    const { file, blocks, answer } = store(t)
    const slabs = new SlabFiles()
    t.after(() => slabs.close())
    const lengths: number[] = []
    // The margin left when the stream starts is less than the first block takes.
    const n = slabs.stream(answer(TTL_MARGIN_MS + 100), { path: 'f', size: file.length, blocks }, performance.now(), (length) => {
      lengths.push(length)
      block(200)
    })
    assert.deepEqual(lengths, [BLOCK])
    assert.equal(n, BLOCK)
    assert.equal(slabs.stream(answer(TTL_MARGIN_MS), { path: 'f', size: file.length, blocks }, performance.now() - 1, () => assert.fail('moved')), 0)
  })
})

describe('SlabFiles descriptors', () => {
  test('each slab is opened once however often it is read, and close() closes them all', (t) => {
    const { file, blocks, answer } = store(t)
    const before = fdCount()
    const slabs = new SlabFiles()
    for (let i = 0; i < 5; i++) slabs.read(answer(), { path: 'f', size: file.length, blocks }, performance.now())
    assert.equal(fdCount(), before + 2)
    slabs.close()
    assert.equal(fdCount(), before)
    slabs.close()
  })
})
