/**
 * A file overwritten in place while it is read: every successful read must be
 * the bytes of one whole version the writer produced, and once the writer is
 * done every read must get its last version, never a stale one.
 *
 * The writer is another process, rewriting the whole file with one pwrite at
 * offset 0 per version (Linux stamps mtime and ctime when such a write
 * starts, so a read during it sees the final identity over old bytes).
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const MiB = 1024 * 1024
const SIZE = 128 * MiB
/** Short, to keep the spec quick; a write of SIZE takes a few tens of ms. */
const SETTLE = Number(process.env.SPEC_SETTLE ?? 250)

/** Version k of the file: every byte is k (so a range is "one version" when all its bytes are equal). */
const WRITER = `
const fs = require('node:fs')
const [path, size, version] = process.argv.slice(1)
const data = Buffer.alloc(Number(size), Number(version))
const fd = fs.openSync(path, 'r+')
// Let the readers get going on the old version first.
setTimeout(() => {
  fs.writeSync(fd, data, 0, data.length, 0)
  fs.closeSync(fd)
}, 100)
`

/** Another process writes version `version` of the whole file with one pwrite. */
function runWriter(path: string, version: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', WRITER, path, String(SIZE), String(version)], { stdio: 'inherit' })
    child.on('error', reject)
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))))
  })
}

/** The version a range holds, or -1 when its bytes are not all of one version. */
function versionOf(buf: Buffer): number {
  if (buf.length === 0) return -2
  const v = buf[0]
  for (let i = 0; i < buf.length; i += 4096) if (buf[i] !== v) return -1
  return buf.every((b) => b === v) ? v : -1
}

describe('a file overwritten in place while it is read', () => {
  test('every successful read is one whole version, and the last version is served once the writer is done', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 256 * MiB, settle: SETTLE })
    writeFile(root, 'f.bin', Buffer.alloc(SIZE, 0))
    const path = join(root, 'f.bin')
    const client = await connect(url)
    t.after(() => client.close())
    // Cached as version 0 before the writer starts.
    assert.equal(versionOf(await client.readFile('f.bin')), 0)

    const seen = { ok: 0, changed: 0, mixed: 0 }
    const tail = { offset: SIZE - MiB, length: MiB }
    const reader = async (until: Promise<unknown>, range: { offset: number; length: number } | null) => {
      let writing = true
      void until.finally(() => (writing = false))
      while (writing) {
        try {
          const got = range ? await client.readFile('f.bin', range) : await client.readFile('f.bin')
          if (versionOf(got) < 0) seen.mixed++
          else seen.ok++
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'ECHANGED')
          seen.changed++
        }
      }
    }
    // Each round: one version written by one pwrite, read all the while, then checked from fresh connections.
    for (let version = 1; version <= 3; version++) {
      const writer = runWriter(path, version)
      await Promise.all([reader(writer, tail), reader(writer, tail), reader(writer, tail), reader(writer, null), writer])
      t.diagnostic(JSON.stringify(seen))
      assert.equal(seen.mixed, 0, `reads that mixed versions: ${JSON.stringify(seen)}`)
      for (let i = 0; i < 1; i++) {
        const fresh = await connect(url)
        try {
          assert.equal(versionOf(await fresh.readFile('f.bin', tail)), version, `round ${version}: the tail after the write`)
          assert.equal(versionOf(await fresh.readFile('f.bin')), version, `round ${version}: the whole file after the write`)
        } finally {
          await fresh.close()
        }
      }
    }
  })
})
