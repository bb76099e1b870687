import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import type { CorruptMode } from '../../lib/stages/corrupt.js'
import { faultyProxy } from '../helpers/faulty-proxy.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const MiB = 1024 * 1024
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
// HELLO is the first ~110 bytes; a damaged HELLO fails connect (EPROTO), which is not what these specs are about.
const SKIP_HELLO = 512

describe('reads through a damaging link still deliver exactly the file', () => {
  const modes: CorruptMode[] = ['flip', 'drop', 'duplicate', 'garbage', 'mixed']
  const rates = [2e-6, 2e-5]
  for (const mode of modes) {
    for (const rate of rates) {
      test(`${mode} at ${rate} faults per byte`, async (t) => {
        const { server, url, root } = await startServer(t, { pageSize: 64 * 1024 })
        const data = writeFile(root, 'f.bin', 4 * MiB + 123)
        const proxy = await faultyProxy(t, url, { rate, mode, seed: 7, skip: SKIP_HELLO })
        const client = await connect(proxy.url, { progressTimeout: 200 })
        t.after(() => client.close())
        const got = await client.readFile('f.bin')
        assert.equal(got.length, data.length)
        assert.equal(sha(got), sha(data))
        assert.ok(proxy.stats().faults > 0, 'the link did damage something')
        assert.ok(client.counters().nacks > 0, 'the client asked for resends')
        assert.ok(server.stats().nacks > 0, 'the server resent')
      })
    }
  }

  test('with md5 page checksums too', async (t) => {
    const { server, url, root } = await startServer(t, { checksum: 'md5', pageSize: 64 * 1024 })
    const data = writeFile(root, 'f.bin', 3 * MiB)
    const proxy = await faultyProxy(t, url, { rate: 1e-5, mode: 'mixed', seed: 3, skip: SKIP_HELLO })
    const client = await connect(proxy.url, { progressTimeout: 200 })
    t.after(() => client.close())
    assert.equal(sha(await client.readFile('f.bin')), sha(data))
    assert.ok(server.stats().nacks > 0)
  })

  test('several requests in flight on one damaged connection all complete', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 32 * 1024 })
    const files = Array.from({ length: 12 }, (_, i) => writeFile(root, `m/${i}.bin`, 200_000 + i * 4099))
    const proxy = await faultyProxy(t, url, { rate: 1e-5, mode: 'mixed', seed: 11, skip: SKIP_HELLO })
    const client = await connect(proxy.url, { progressTimeout: 200 })
    t.after(() => client.close())
    const [got, listing] = await Promise.all([Promise.all(files.map((_, i) => client.readFile(`m/${i}.bin`))), client.ls('m')])
    got.forEach((g, i) => assert.equal(sha(g), sha(files[i]), `file ${i}`))
    assert.equal(listing.length, 12)
    assert.ok(client.counters().nacks > 0)
  })
})

describe('bounds', () => {
  for (const mode of ['flip', 'garbage'] as const) {
    test(`gives up with ECORRUPT on a hopeless link (${mode}) and delivers no wrong byte`, async (t) => {
      const { url, root } = await startServer(t, { pageSize: 16 * 1024, retries: 3 })
      const data = writeFile(root, 'f.bin', 2 * MiB)
      const proxy = await faultyProxy(t, url, { rate: 0.02, mode, seed: 5, skip: SKIP_HELLO })
      const client = await connect(proxy.url, { progressTimeout: 100 })
      t.after(() => client.close())
      const chunks: Buffer[] = []
      const err = await (async () => {
        try {
          for await (const c of client.read('f.bin')) chunks.push(c as Buffer)
        } catch (e) {
          return e as Error & { code?: string }
        }
      })()
      assert.ok(err, 'the read must fail')
      assert.ok(['ECORRUPT', 'ETIMEDOUT'].includes(err.code!), `code ${err.code}: ${err.message}`)
      const got = Buffer.concat(chunks)
      assert.ok(got.equals(data.subarray(0, got.length)), 'every byte handed on was right')
    })
  }
})
