import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { appendFileSync, renameSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { DEFAULT_SETTLE_MS } from '../../lib/fs/settle.js'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024

/** Read to the end, returning the bytes or the error code (never both). */
async function outcome(stream: AsyncIterable<unknown>): Promise<Buffer | string> {
  const chunks: Buffer[] = []
  try {
    for await (const c of stream) chunks.push(c as Buffer)
    return Buffer.concat(chunks)
  } catch (err) {
    return (err as { code: string }).code
  }
}

describe('single-flight', () => {
  test('eight loaders asking for the same shard at once cause one disk read per block', async (t) => {
    const { server, url, root } = await startServer(t, { cacheSize: 64 * MiB })
    const data = writeFile(root, 'shard.tar', 4 * MiB)
    const clients = await Promise.all(Array.from({ length: 8 }, () => connect(url)))
    t.after(() => Promise.all(clients.map((c) => c.close())))
    const got = await Promise.all(clients.map((c) => c.readFile('shard.tar')))
    for (const g of got) assert.ok(g.equals(data))
    // 4 blocks of 1 MiB, each read once from disk however many asked for it.
    assert.equal(server.stats().diskReads, 4)
    assert.equal(server.stats().misses, 4)
  })
})

describe('coherence with the disk', () => {
  const cases: [string, (path: string) => void][] = [
    ['rewritten in place', (p) => writeFileSync(p, randomBytes(2 * MiB))],
    ['truncated', (p) => truncateSync(p, 300_000)],
    ['appended to', (p) => appendFileSync(p, randomBytes(123_457))],
    [
      // rsync -t, tar x, touch -d: same size, same mtime, other bytes. Only the ctime tells.
      'rewritten at the same size with its mtime set back',
      (p) => {
        // touch -r copies the timestamps to the nanosecond, as rsync -t and tar x do.
        execFileSync('touch', ['-r', p, `${p}.times`])
        writeFileSync(p, randomBytes(statSync(p).size))
        execFileSync('touch', ['-r', `${p}.times`, p])
      },
    ],
    [
      'replaced by a rename over it',
      (p) => {
        writeFileSync(`${p}.new`, randomBytes(2 * MiB + 9))
        renameSync(`${p}.new`, p)
      },
    ],
  ]

  for (const [what, change] of cases) {
    test(`serves the new bytes after the file is ${what} between reads`, async (t) => {
      // With the server's own settle window: reads of a file changed within it wait.
      const { url, root } = await startServer(t, { settle: DEFAULT_SETTLE_MS })
      const path = join(root, 'f.bin')
      writeFile(root, 'f.bin', 2 * MiB)
      const client = await connectTo(t, url)
      await client.readFile('f.bin') // now cached
      await sleep(20) // let the clock move, so mtime differs even on coarse timestamps
      change(path)
      const expected = (await import('node:fs')).readFileSync(path)
      assert.ok((await client.readFile('f.bin')).equals(expected))
      // A range too, served from blocks of the new version only.
      const mid = Math.floor(expected.length / 2)
      assert.ok((await client.readFile('f.bin', { offset: mid, length: 1000 })).equals(expected.subarray(mid, mid + 1000)))
    })

    test(`never hands on a mix of old and new bytes when the file is ${what} during a read`, async (t) => {
      const { url, root } = await startServer(t, { pageSize: 64 * 1024 })
      const path = join(root, 'f.bin')
      const old = writeFile(root, 'f.bin', 6 * MiB)
      const client = await connectTo(t, url)
      await client.readFile('f.bin', { length: 3 * MiB }) // the first half is cached, the rest is not
      await sleep(20)
      const stream = client.read('f.bin', { highWaterMark: 64 * 1024 })
      const result = outcome(
        (async function* () {
          let n = 0
          for await (const c of stream) {
            if (n++ === 2) change(path) // mid-transfer
            yield c
          }
        })(),
      )
      const r = await result
      const now = (await import('node:fs')).readFileSync(path)
      if (typeof r === 'string') assert.equal(r, 'ECHANGED')
      else assert.ok(r.equals(old) || r.equals(now), `a read that succeeds returns one whole version (${r.length} bytes)`)
      // And the next read is the new version.
      assert.ok((await client.readFile('f.bin')).equals(now))
    })
  }
})
