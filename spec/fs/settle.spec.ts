import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { identityOf } from '../../lib/fs/identity.js'
import { Settle } from '../../lib/fs/settle.js'
import { tempDir } from '../helpers/fixtures.js'

/** Stats with just what Settle looks at. */
function stats(ctimeMs: number, ino = 1n) {
  const ns = BigInt(ctimeMs) * 1_000_000n
  return { dev: 1n, ino, size: 10n, mtimeNs: ns, ctimeNs: ns } as unknown as import('node:fs').BigIntStats
}

describe('Settle', () => {
  test('a version changed longer ago than the window is settled; a younger one is not, for the rest of the window', () => {
    let now = 100_000
    const settle = new Settle(1000, () => now)
    assert.equal(settle.remaining(stats(now - 1000)), 0)
    assert.equal(settle.remaining(stats(now - 5000)), 0)
    assert.equal(settle.remaining(stats(now - 300)), 700)
    now += 700
    assert.equal(settle.remaining(stats(now - 1000)), 0)
  })

  test('a ctime ahead of our clock (another host\'s) counts from when the version was first seen', () => {
    let now = 100_000
    const settle = new Settle(1000, () => now)
    const ahead = stats(now + 60_000)
    assert.equal(settle.remaining(ahead), 1000)
    now += 400
    assert.equal(settle.remaining(ahead), 600)
    now += 600
    assert.equal(settle.remaining(ahead), 0)
    // Another version is another first sighting.
    assert.equal(settle.remaining(stats(now + 60_000, 2n)), 1000)
  })

  test('a window of 0 trusts every version at once', () => {
    assert.equal(new Settle(0).remaining(stats(Date.now())), 0)
  })

  test('wait() returns once the file has been left alone for the window', async (t) => {
    const path = join(tempDir(t), 'f')
    writeFileSync(path, 'fresh')
    const fh = await open(path)
    t.after(() => fh.close())
    const st = await fh.stat({ bigint: true })
    const settled = await new Settle(200).wait(fh, st, 'f')
    assert.equal(identityOf(settled), identityOf(st))
    assert.ok(Date.now() >= Number(st.ctimeNs / 1_000_000n) + 200, 'not before the window has passed since the change')
  })

  test('wait() fails with ECHANGED for a file written to again and again', async (t) => {
    const path = join(tempDir(t), 'f')
    writeFileSync(path, 'v0')
    const fh = await open(path)
    t.after(() => fh.close())
    let n = 0
    const writer = setInterval(() => writeFileSync(path, `v${++n}`), 20)
    t.after(() => clearInterval(writer))
    await assert.rejects(new Settle(100).wait(fh, await fh.stat({ bigint: true }), 'f'), { code: 'ECHANGED' })
    // Stopped here: the after hooks remove the directory first, and a write between would fail (ENOENT).
    clearInterval(writer)
  })
})
