/**
 * Keys of the shared tier: one block of one version of a file, named by what
 * every host sees alike (the real path, the inode unless left out, size and
 * times, block size and index), never by the device number.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { sharedBlockKey } from '../../lib/tier/block-key.js'

const MiB = 1024 * 1024

describe('sharedBlockKey', () => {
  test('keys name the real path, the inode, the version and the block, not the device', () => {
    const k = sharedBlockKey('p:', 'a/b c.jpg', '2049:123456:1000:1700000000000000001:1700000000000000002', MiB, 7)
    assert.equal(k, `p:${MiB}:123456:1000:1700000000000000001:1700000000000000002:7:a/b c.jpg`)
    assert.equal(sharedBlockKey('p:', 'x', '9:5:1000:1:2', MiB, 0), sharedBlockKey('p:', 'x', '1:5:1000:1:2', MiB, 0), 'another host\'s device shares the key')
    assert.notEqual(sharedBlockKey('p:', 'x', '9:5:1000:1:2', MiB, 0), sharedBlockKey('p:', 'x', '9:6:1000:1:2', MiB, 0), 'another inode is another file')
    assert.notEqual(sharedBlockKey('p:', 'x', '9:5:1000:1:2', MiB, 0), sharedBlockKey('p:', 'x', '9:5:1000:1:3', MiB, 0), 'a new ctime is a new key')
    assert.equal(sharedBlockKey('p:', 'x', '9:5:1000:1:2', MiB, 0, false), sharedBlockKey('p:', 'x', '1:1:1000:1:2', MiB, 0, false), 'without inodes (FUSE mounts): the path and the version alone')
    assert.equal(sharedBlockKey('p:', 'x', '9:5:1000:1:2', MiB, 0, false), `p:${MiB}:1000:1:2:0:x`)
  })

  test('every part tells blocks apart: prefix, path, size, mtime, block size and index', () => {
    const v = '9:5:1000:1:2'
    const keys = [
      sharedBlockKey('p:', 'x', v, MiB, 0),
      sharedBlockKey('q:', 'x', v, MiB, 0),
      sharedBlockKey('p:', 'y', v, MiB, 0),
      sharedBlockKey('p:', 'x', '9:5:1001:1:2', MiB, 0),
      sharedBlockKey('p:', 'x', '9:5:1000:3:2', MiB, 0),
      sharedBlockKey('p:', 'x', v, MiB / 2, 0),
      sharedBlockKey('p:', 'x', v, MiB, 1),
    ]
    assert.equal(new Set(keys).size, keys.length, keys.join('\n'))
  })
})
