/**
 * The slab files' layout: a record's bytes are fixed (a server restarted
 * after a crash reads what an older one wrote), a torn or cleared record is
 * told apart from a whole one, and the sizes and names match the slab files
 * a real store makes.
 */
import assert from 'node:assert/strict'
import { closeSync, openSync, readdirSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { ShmStore } from '../../lib/cache/shm-store.js'
import { clearRecord, headBytes, pages, parseSlabName, readRecord, RECORD, slabBytes, slabName, slotsPerSlab, writeRecord } from '../../lib/cache/slab-layout.js'
import { noSharedMemory, storeDir } from '../helpers/fixtures.js'

const KiB = 1024
const MiB = 1024 * KiB

/** Block 5 of file version 1:2:19:3:4, 19 bytes with crc32 0xdeadbeef: magic "CSP2", the crc32 of bytes 8–63, then the fields. */
const RECORD_HEX =
  '4353503256c06ea1efbeadde13000000050000000000000001000000000000000200000000000000130000000000000003000000000000000400000000000000'
const record = { fileKey: '1:2:19:3:4', index: 5, length: 19, crc: 0xdeadbeef }

describe('slot records', () => {
  test('a record is written as the fixture, in its own slot only, and reads back', () => {
    const head = Buffer.alloc(3 * RECORD, 0xaa)
    assert.equal(writeRecord(head, 1, record), true)
    assert.equal(head.subarray(RECORD, 2 * RECORD).toString('hex'), RECORD_HEX)
    assert.ok(head.subarray(0, RECORD).every((b) => b === 0xaa), 'the slot before is untouched')
    assert.ok(head.subarray(2 * RECORD).every((b) => b === 0xaa), 'the slot after is untouched')
    assert.deepEqual(readRecord(head, 1), record)
  })

  test('the fixture parses, whichever slot it is in', () => {
    const head = Buffer.concat([Buffer.alloc(2 * RECORD), Buffer.from(RECORD_HEX, 'hex')])
    assert.deepEqual(readRecord(head, 2), record)
    assert.equal(readRecord(head, 0), null, 'a slot never recorded has no record')
  })

  test('a key that is not a file identity writes nothing', () => {
    const head = Buffer.alloc(RECORD)
    assert.equal(writeRecord(head, 0, { ...record, fileKey: 'not-an-identity' }), false)
    assert.ok(head.every((b) => b === 0))
    assert.equal(readRecord(head, 0), null)
  })

  test('a record changed anywhere after its checksum is torn', () => {
    for (const at of [8, 12, 16, 20, 24, 63]) {
      const head = Buffer.from(RECORD_HEX, 'hex')
      head[at] ^= 0x01
      assert.equal(readRecord(head, 0), 'torn', `byte ${at}`)
    }
  })

  test('a cleared record is none, and a crc32 is kept unsigned', () => {
    const head = Buffer.alloc(2 * RECORD)
    writeRecord(head, 0, record)
    writeRecord(head, 1, { ...record, crc: -1 })
    assert.equal((readRecord(head, 1) as { crc: number }).crc, 0xffffffff)
    clearRecord(head, 0)
    assert.equal(readRecord(head, 0), null)
    assert.deepEqual(readRecord(head, 1), { ...record, crc: 0xffffffff }, 'its neighbour stays')
  })
})

describe('slab geometry and names', () => {
  test('a slab holds 64 MiB of slots after a head of their records, in whole pages', () => {
    assert.equal(pages(1), 4096)
    assert.equal(pages(4096), 4096)
    assert.equal(pages(4097), 8192)
    assert.equal(slotsPerSlab(4 * KiB), 16384)
    assert.equal(headBytes(16384), MiB, '64 bytes a record')
    assert.equal(slabBytes(4 * KiB), MiB + 64 * MiB)
    assert.equal(slotsPerSlab(MiB), 64)
    assert.equal(slabBytes(MiB), 4096 + 64 * MiB)
    assert.equal(slotsPerSlab(128 * MiB), 1, 'one slot at least, however big')
    assert.equal(slabBytes(128 * MiB), 4096 + 128 * MiB)
  })

  test('a slab name carries its slot size and number; other names are not slabs', () => {
    assert.equal(slabName(65536, 3), 'slab-65536-3')
    assert.deepEqual(parseSlabName('slab-65536-3'), { slotSize: 65536, n: 3 })
    for (const name of ['meta', 'owner', 'slab-65536', 'slab-x-1', 'slab-4096-1.tmp', 'xslab-4096-1']) assert.equal(parseSlabName(name), null, name)
  })

  test('a real store\'s slab files have these names, sizes and records', { skip: noSharedMemory(shmNative()) }, (t) => {
    const store = ShmStore.open({ dir: storeDir(t), blockSize: 64 * KiB, bytes: MiB })
    t.after(() => store.close())
    const slot = store.take(5000)
    assert.ok(slot)
    store.record(slot, record.fileKey, record.index, record.crc)
    const names = readdirSync(store.dir).filter((n) => parseSlabName(n))
    assert.deepEqual(names, [slabName(8192, 0)])
    const file = join(store.dir, names[0])
    assert.equal(statSync(file).size, slabBytes(8192))
    const head = Buffer.alloc(headBytes(slotsPerSlab(8192)))
    const fd = openSync(file, 'r')
    try {
      readSync(fd, head, 0, head.length, 0)
    } finally {
      closeSync(fd)
    }
    assert.deepEqual(readRecord(head, slot.index), { ...record, length: 5000 })
    assert.equal(store.location(slot).offset, head.length + slot.index * 8192, 'slots start after the head')
  })
})
