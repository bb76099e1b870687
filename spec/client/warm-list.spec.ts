/**
 * warmList, `warm` of an explicit list: a request per batch of paths, each
 * within half the server's longest request line (at most 32 KiB of JSON),
 * progress and result summed over the batches (the first 20 skipped paths
 * kept), no batch after one that found the cache full.
 */
import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import type { Client, WarmResult } from '../../lib/client/client.js'
import { warmList } from '../../lib/client/warm-list.js'
import { connect } from '../../lib/client/client.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { jsonFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { SCRIPTED_HELLO, scriptedServer } from '../helpers/scripted-server.js'
import { connectTo, startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * KiB

/** The client's warm request, recording the paths of each request sent and what each answered. */
function recorded(client: Client) {
  const batches: string[][] = []
  const answers: WarmResult[] = []
  const request = async (args: { paths: string[] }, onProgress?: (p: unknown) => void) => {
    batches.push(args.paths)
    const r = await client.request<WarmResult>('warm', args, onProgress)
    answers.push(r)
    return r
  }
  return { batches, answers, request }
}

/** Bytes of a batch as its request line carries it. */
const lineBytes = (paths: string[]) => Buffer.byteLength(JSON.stringify(paths))

async function serverWith(t: TestContext, files: Record<string, number>, opts: Parameters<typeof startServer>[1] = {}) {
  const { url, root, server } = await startServer(t, { cacheSize: 64 * MiB, ...opts })
  for (const [rel, size] of Object.entries(files)) writeFile(root, rel, size)
  return { client: await connectTo(t, url), server }
}

const names = (n: number, dir = 'd') => Array.from({ length: n }, (_, i) => `${dir}/file-${String(i).padStart(5, '0')}.bin`)

describe('warmList', () => {
  test('a list longer than one request line is sent in batches, progress summed over them', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 64 * MiB, maxRequest: 16 * KiB })
    const names = Array.from({ length: 1500 }, (_, i) => `a-rather-long-directory-name/file-${String(i).padStart(5, '0')}.txt`)
    for (const n of names) writeFile(root, n, 'x')
    const client = await connectTo(t, url)
    const seen: WarmResult[] = []
    const r = await client.warmList(
      (function* () {
        yield* names
      })(),
      (p) => seen.push(p),
    )
    assert.equal(r.files, names.length)
    assert.equal(r.totalFiles, names.length)
    assert.equal(r.skipped, 0)
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i].files >= seen[i - 1].files, `progress went back: ${seen[i - 1].files} then ${seen[i].files}`)
  })

  test('each batch is within half the longest request line, or 32 KiB when the server does not say it; in order, none empty', async (t) => {
    const list = names(3000)
    const { client } = await serverWith(t, Object.fromEntries(list.map((n) => [n, 1])))
    for (const [maxRequest, most] of [[4096, 2048], [undefined, 32 * KiB], [10 * MiB, 32 * KiB]] as const) {
      const { batches, request } = recorded(client)
      const r = await warmList(request, () => maxRequest, list)
      assert.equal(r.files, list.length)
      assert.deepEqual(batches.flat(), list, 'every path once, in order')
      assert.ok(batches.length > 1 && batches.every((b) => b.length > 0))
      for (const b of batches) assert.ok(lineBytes(b) <= most, `${lineBytes(b)} bytes of paths with maxRequest ${maxRequest}`)
      assert.ok(lineBytes(batches[0]) > most / 2, 'batches are filled, not cut short')
    }
  })

  test('the result is summed over the batches, skipped paths too (the first 20 named)', async (t) => {
    const present = names(40)
    const list = present.flatMap((p, i) => [p, `missing/${i}.bin`])
    const { client } = await serverWith(t, Object.fromEntries(present.map((n, i) => [n, 100 + i])))
    const { batches, request } = recorded(client)
    const r = await warmList(request, () => 600, list)
    assert.ok(batches.length >= 4, `${batches.length} batches`)
    const bytes = present.reduce((n, _, i) => n + 100 + i, 0)
    assert.deepEqual({ ...r, skippedPaths: undefined }, { files: 40, bytes, totalFiles: 40, totalBytes: bytes, full: false, skipped: 40, skippedPaths: undefined })
    assert.deepEqual(r.skippedPaths, list.filter((p) => p.startsWith('missing/')).slice(0, 20).map((path) => ({ path, code: 'ENOENT' })))
  })

  test('once a batch finds the cache full, no other is sent', async (t) => {
    const list = names(400)
    const { client, server } = await serverWith(t, Object.fromEntries(list.map((n) => [n, 16 * KiB])), { cacheSize: 2 * MiB, policy: 'lru' })
    const { batches, answers, request } = recorded(client)
    const r = await warmList(request, () => 800, list)
    assert.equal(r.full, true)
    assert.ok(r.files > 0 && r.files < list.length, `${r.files} files`)
    assert.deepEqual(answers.map((a) => a.full), answers.map((_, i) => i === answers.length - 1), 'the batch that found it full is the last sent')
    assert.ok(batches.length > 1)
    assert.equal(r.files, answers.reduce((n, a) => n + a.files, 0))
    assert.ok(server.stats().cacheBytes <= 2 * MiB)
  })

  test('a path no request line can carry is skipped with ETOOBIG, and the list goes on', async (t) => {
    const { client, server } = await serverWith(t, { 'd/a.bin': 10, 'd/b.bin': 20 }, { maxRequest: 4096 })
    const long = `x/${'y'.repeat(5000)}`
    const r = await client.warmList(['d/a.bin', long, 'd/b.bin'])
    assert.deepEqual(r, { files: 2, bytes: 30, totalFiles: 2, totalBytes: 30, full: false, skipped: 1, skippedPaths: [{ path: long, code: 'ETOOBIG' }] })
    assert.equal(server.stats().cacheBytes, 30)
  })

  test('an async list is taken as it comes; an empty one sends nothing', async (t) => {
    const list = names(50)
    const { client } = await serverWith(t, Object.fromEntries(list.map((n) => [n, 10])))
    const { batches, request } = recorded(client)
    async function* slowly() {
      for (const n of list) {
        await new Promise((r) => setImmediate(r))
        yield n
      }
    }
    assert.equal((await warmList(request, () => undefined, slowly())).files, 50)
    assert.deepEqual(batches.flat(), list)
    batches.length = 0
    assert.deepEqual(await warmList(request, () => undefined, []), { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, full: false, skipped: 0, skippedPaths: [] })
    assert.deepEqual(batches, [])
  })

  test('progress during a batch counts the batches before it; the client batches by its HELLO\'s maxRequest', async (t) => {
    // Each batch of n paths: a PROGRESS of one file loaded, then its RESULT of all n.
    const { url, lines } = await scriptedServer(
      t,
      (req) => {
        const n = (req.paths as string[]).length
        const counts = (files: number) => ({ files, bytes: 10 * files, totalFiles: n, totalBytes: 10 * n, full: false, skipped: 0 })
        return [jsonFrame(FrameType.PROGRESS, req.id, 0, counts(1)), jsonFrame(FrameType.RESULT, req.id, 1, { ...counts(n), skippedPaths: [] })]
      },
      { ...SCRIPTED_HELLO, maxRequest: 200 },
    )
    const client = await connect(url)
    t.after(() => client.close())
    const progress: WarmResult[] = []
    const r = await client.warmList(names(12), (p) => progress.push(p))
    const sizes = lines.map((l) => (l.paths as string[]).length)
    assert.ok(sizes.length >= 3 && lines.every((l) => lineBytes(l.paths as string[]) <= 100), `batches of ${sizes.join(' ')}`)
    assert.equal(r.files, 12)
    const before = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0))
    assert.deepEqual(progress.map((p) => [p.files, p.totalFiles]), before.map((b, i) => [b + 1, b + sizes[i]]))
  })
})
