/**
 * A NACK is a request to run something again: it must count against the
 * same limits as a request, and cost nothing for a request the connection
 * has let go of.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { FrameType } from '../../lib/protocol/constants.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * 1024
const N = 40
const MAX_IN_FLIGHT = 4

const O_PATH = 0o10000000

/** Descriptors this process holds open for reading `path` (not the O_PATH ones a lookup holds). */
function opened(path: string): number {
  let n = 0
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== path) continue
      const flags = parseInt(/flags:\s*([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8)
      if (!(flags & O_PATH)) n++
    } catch {
      // closed meanwhile
    }
  }
  return n
}

describe('NACKs and the limits', () => {
  test('NACKs for requests that were cancelled are refused, not run again', async (t) => {
    const { server, url, root } = await startServer(t, { maxInFlight: MAX_IN_FLIGHT, settle: 0 })
    writeFile(root, 'big.bin', 4 * MiB)
    const peer = await rawPeer(t, url)
    for (let id = 1; id <= N; id++) {
      peer.send({ id, op: 'read', path: 'big.bin' })
      peer.send({ id, op: 'cancel' })
    }
    for (let id = 1; id <= N; id++) await peer.done(id)
    for (let id = 1; id <= N; id++) peer.send({ id, op: 'nack', seq: 0, offset: 0, resync: 1 })
    await peer.until((fs) => fs.filter((f) => f.type === FrameType.ERROR && f.epoch === 1).length === N)
    const answers = peer.frames.filter((f) => f.epoch === 1)
    assert.ok(answers.every((f) => f.type === FrameType.ERROR && json(f).code === 'ECORRUPT'), 'every NACK answered ECORRUPT, nothing resent')
    assert.equal(server.stats().nacks, 0)
  })

  test('resends of finished requests run within --max-in-flight', async (t) => {
    // A cache of a few small blocks: a resend is never served whole from it (which needs no open
    // file), and one that waits for the client to read holds the file open for its next block.
    const { url, root } = await startServer(t, { maxInFlight: MAX_IN_FLIGHT, cacheSize: 256 * KiB, blockSize: 64 * KiB, settle: 0 })
    writeFile(root, 'big.bin', 4 * MiB)
    const path = join(root, 'big.bin')
    const peer = await rawPeer(t, url)
    for (let id = 1; id <= N; id++) peer.send({ id, op: 'read', path: 'big.bin', length: 2 * MiB })
    for (let id = 1; id <= N; id++) await peer.done(id)
    peer.socket.pause() // hold the resends in flight
    for (let id = 1; id <= N; id++) peer.send({ id, op: 'nack', seq: 0, offset: 0, resync: 1 })
    let most = 0
    for (let i = 0; i < 60; i++) {
      most = Math.max(most, opened(path))
      await sleep(5)
    }
    peer.socket.resume()
    await peer.until((fs) => fs.filter((f) => f.type === FrameType.END && f.epoch === 1).length === N, 30_000)
    assert.ok(most > 0, 'the resends ran')
    assert.ok(most <= MAX_IN_FLIGHT, `${most} resends held the file open at once; the limit is ${MAX_IN_FLIGHT}`)
  })
})
