/**
 * A cold server on a root with latency per read (a FUSE view that waits
 * before every read, as a network mount does) overlaps its misses: a batch of
 * files costs a few round trips, not one per file. The server runs as users
 * run it, from its bin, so the thread pool its shebang sizes is the one that
 * reads.
 */
import assert from 'node:assert/strict'
import { mkdtempSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { startServerProcess } from '../helpers/cli.js'
import { storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { latencyFsPython, mountLatencyFs } from '../helpers/latency-fs.js'

const KiB = 1024
const FILES = 48
const DELAY_MS = 25
const fuse = await latencyFsPython()

for (const shortCircuit of [true, false]) {
  const how = shortCircuit ? 'short-circuit (locate)' : 'over the socket (readv)'
  test(`a cold server on a root with latency per read keeps many reads in flight: ${how}`, { skip: 'skipped' in fuse ? fuse.skipped : false, timeout: 60_000 }, async (t) => {
    if ('skipped' in fuse) return
    const source = tempDir(t)
    const files = Array.from({ length: FILES }, (_, i) => {
      const path = `class${i % 4}/img${String(i).padStart(3, '0')}.jpg`
      return { path, data: writeFile(source, path, 40 * KiB + i * 997) }
    })
    // Made and removed here, after the view is unmounted (a tempDir's removal could run first).
    const dir = mkdtempSync(join(tmpdir(), 'cacheserv-mnt-'))
    const mount = await mountLatencyFs(fuse.python, source, dir, DELAY_MS).catch((err: unknown) => {
      rmdirSync(dir)
      throw err
    })
    let stopped = false
    t.after(async () => {
      if (!stopped) await mount.stop()
      rmdirSync(dir)
    })
    const server = await startServerProcess(t, ['--root', dir, '--port', '0', '--settle', '0', '--cache-size', '64MiB', '--shm-dir', storeDir(t)], { direct: true })
    const client = await connect(server.url, { shortCircuit })
    t.after(() => client.close())

    let i = 0
    for await (const got of client.readMany(files.map((f) => f.path), { inFlight: 8 })) {
      assert.equal(got.path, files[i]!.path)
      assert.ok(got.data.equals(files[i]!.data), `${got.path}: exact bytes`)
      i++
    }
    assert.equal(i, FILES)
    const total = files.reduce((n, f) => n + f.data.length, 0)
    const { bytesServed, locatedBytes } = await client.stats()
    assert.equal(bytesServed >= total, !shortCircuit, `${bytesServed} bytes sent over the socket, of ${total}`)
    assert.equal(locatedBytes >= total, shortCircuit, `${locatedBytes} bytes given in shared memory, of ${total}`)
    await server.stop()
    stopped = true
    const tally = await mount.stop()
    t.diagnostic(`${tally.reads} reads of the root, at most ${tally.mostAtOnce} at once`)
    assert.ok(tally.reads >= FILES, `every file read from the root once: ${tally.reads} reads`)
    // Node's own thread pool (4 threads) would cap this at 4; the bin's has 8; locate loads 8 files at once, readv reads 4 ahead of the one it sends.
    assert.ok(tally.mostAtOnce >= (shortCircuit ? 8 : 5), `reads at once: ${tally.mostAtOnce}`)
  })
}
