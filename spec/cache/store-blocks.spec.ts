/**
 * StoreBlocks: a slot is freed only a turn of the event loop after its block
 * lost its last holder, and a block whose slot was freed is never handed out
 * again; adoption keeps only blocks whose bytes match their crc32.
 */
import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { ShmStore } from '../../lib/cache/shm-store.js'
import { StoreBlocks } from '../../lib/cache/store-blocks.js'
import { crc32 } from '../../lib/protocol/crc32.js'
import { noSharedMemory, storeDir } from '../helpers/fixtures.js'

const KiB = 1024

describe('StoreBlocks', { skip: noSharedMemory(shmNative()) }, () => {
  function filled(store: ShmStore, blocks: StoreBlocks, key: string, bytes: Buffer): Buffer {
    const slot = store.take(bytes.length)
    assert.ok(slot)
    const block = Buffer.from(slot.buffer)
    block.set(bytes)
    blocks.keep(block, slot, key)
    return block
  }

  test('a slot is freed a turn after its block lost its holders, never while one holds it', async (t) => {
    const store = ShmStore.open({ dir: storeDir(t), blockSize: 64 * KiB, bytes: 256 * KiB })
    t.after(() => store.close())
    const holders = new Set<Buffer>()
    const blocks = new StoreBlocks(store, (b) => holders.has(b))
    const a = filled(store, blocks, '1:2:3:4:5#0', Buffer.alloc(100, 1))
    holders.add(a)
    blocks.recycle(a)
    await turn()
    assert.equal(store.slots, 1, 'held: kept')
    blocks.assertLive(a)
    holders.delete(a)
    blocks.recycle(a)
    assert.equal(store.slots, 1, 'not in the same turn: a continuation may still lease it')
    await turn()
    assert.equal(store.slots, 0, 'freed')
    assert.throws(() => blocks.assertLive(a), { code: 'EINTERNAL' })
    assert.equal(blocks.location(a), undefined)
  })

  test('a recorded block has a location; adoption keeps only blocks whose bytes match their crc32', (t) => {
    const dir = storeDir(t)
    const first = ShmStore.open({ dir, blockSize: 64 * KiB, bytes: 256 * KiB })
    const old = new StoreBlocks(first, () => true)
    const good = filled(first, old, '1:2:3:4:5#0', Buffer.alloc(5000, 7))
    const bad = filled(first, old, '1:2:3:4:6#1', Buffer.alloc(5000, 8))
    assert.equal(old.location(good), undefined, 'not recorded yet')
    old.record(good)
    old.record(bad)
    assert.equal(old.location(good)?.crc, crc32(good))
    bad[0] ^= 0xff // damaged after it was recorded
    const second = ShmStore.open({ dir, blockSize: 64 * KiB, bytes: 256 * KiB })
    t.after(() => second.close())
    const adopted = new StoreBlocks(second, () => true).adopt()
    assert.equal(adopted.dropped, 1)
    assert.deepEqual(
      adopted.blocks.map((b) => [b.key, b.crc]),
      [['1:2:3:4:5#0', crc32(good)]],
    )
    assert.ok(adopted.blocks[0].block.equals(Buffer.alloc(5000, 7)))
  })
})
