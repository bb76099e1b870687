/**
 * Reads through a server whose memory budget for data outside the cache is four
 * blocks and whose pages do not divide its blocks: pages straddle
 * blocks (copies), reads wait for one another, and every byte must still
 * arrive exactly, with nothing held once they are done.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { connect as connectRaw } from 'node:net'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect } from '../../lib/client/client.js'
import { faultyProxy } from '../helpers/faulty-proxy.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const KiB = 1024
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const BLOCK = 64 * KiB
const tight = { blockSize: BLOCK, pageSize: 48 * KiB, maxBuffered: 4 * BLOCK }

describe('reads within a four-block memory budget', () => {
  for (const [name, cacheSize] of [
    ['nothing cached (the cache holds 4 blocks)', 4 * BLOCK],
    ['everything cached', 64 * BLOCK],
  ] as const) {
    test(`unaligned ranges from 8 clients at once are byte-exact, ${name}`, async (t) => {
      const { server, url, root } = await startServer(t, { ...tight, cacheSize })
      const data = writeFile(root, 'f.bin', 40 * BLOCK + 777)
      const clients = await Promise.all(Array.from({ length: 8 }, () => connect(url)))
      t.after(() => Promise.all(clients.map((c) => c.close())))
      // Warm once, so the second case serves from the cache.
      assert.equal(sha(await clients[0].readFile('f.bin')), sha(data))
      const ranges = Array.from({ length: 48 }, (_, i) => {
        const offset = (i * 37_301) % (data.length - 1)
        return { offset, length: Math.min(data.length - offset, 3 * BLOCK + ((i * 911) % BLOCK)) }
      })
      const got = await Promise.all(ranges.map((r, i) => clients[i % 8].readFile('f.bin', r)))
      got.forEach((g, i) => assert.ok(g.equals(data.subarray(ranges[i].offset, ranges[i].offset + ranges[i].length)), `range ${i}`))
      // Whole files too, several at once.
      const whole = await Promise.all(clients.map((c) => c.readFile('f.bin')))
      for (const w of whole) assert.equal(sha(w), sha(data))
      assert.equal(server.stats().bufferedBytes, 0, 'nothing held outside the cache once every read is done')
      assert.equal(server.stats().bufferedLimit, 4 * BLOCK)
    })
  }

  test('resends after damage are byte-exact when pages straddle blocks', async (t) => {
    const { server, url, root } = await startServer(t, { ...tight, cacheSize: 4 * BLOCK })
    const data = writeFile(root, 'f.bin', 48 * BLOCK + 5)
    const proxy = await faultyProxy(t, url, { rate: 2e-5, mode: 'mixed', seed: 5, skip: 512 })
    const client = await connect(proxy.url, { progressTimeout: 200 })
    t.after(() => client.close())
    const [whole, part] = await Promise.all([client.readFile('f.bin'), client.readFile('f.bin', { offset: 1000, length: 20 * BLOCK })])
    assert.equal(sha(whole), sha(data))
    assert.ok(part.equals(data.subarray(1000, 1000 + 20 * BLOCK)))
    assert.ok(server.stats().nacks > 0, 'the server resent')
    assert.equal(server.stats().bufferedBytes, 0)
  })

  test('pages copied across blocks for clients that do not read stay within the budget', async (t) => {
    // Everything cached: the only data held outside the cache is copies of straddling pages.
    const { server, url, root } = await startServer(t, { ...tight, cacheSize: 512 * BLOCK })
    const data = writeFile(root, 'f.bin', 400 * BLOCK + 3)
    const client = await connect(url)
    t.after(() => client.close())
    assert.equal(sha(await client.readFile('f.bin')), sha(data))
    const port = Number(new URL(url).port)
    const sockets = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const s = connectRaw(port, '127.0.0.1')
        s.on('error', () => {})
        t.after(() => s.destroy())
        await once(s, 'connect')
        s.pause() // never reads
        for (let j = 1; j <= 4; j++) s.write(JSON.stringify({ id: j, op: 'read', path: 'f.bin', offset: 1000 + i * 7 + j }) + '\n')
        return s
      }),
    )
    let peak = 0
    for (const deadline = Date.now() + 1500; Date.now() < deadline; ) {
      peak = Math.max(peak, server.stats().bufferedBytes)
      await sleep(5)
    }
    assert.ok(peak > 0, 'pages were copied')
    assert.ok(peak <= tight.maxBuffered, `${peak} bytes held outside the cache; the budget is ${tight.maxBuffered}`)
    for (const s of sockets) s.destroy()
    // A client that reads still gets its bytes meanwhile and after.
    assert.ok((await client.readFile('f.bin', { offset: 999, length: 5 * BLOCK })).equals(data.subarray(999, 999 + 5 * BLOCK)))
    for (let i = 0; i < 100 && server.stats().bufferedBytes > 0; i++) await sleep(20)
    assert.equal(server.stats().bufferedBytes, 0, 'nothing held once they are gone')
  })
})
