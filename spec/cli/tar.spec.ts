import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { writeFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { connect } from '../../lib/client/client.js'
import { writeTar } from '../../lib/cli/tar.js'
import { join } from 'node:path'
import { CLIENT_BIN, run } from '../helpers/cli.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

/** Python reads the stream the WebDataset way and prints name, size and sha256 of every member. */
const READER = `
import hashlib, sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as t:
    for m in t:
        data = t.extractfile(m).read()
        print(m.name, len(data), hashlib.sha256(data).hexdigest())
`

const sha = async (b: Buffer) => (await import('node:crypto')).createHash('sha256').update(b).digest('hex')

describe('cacheserv-pipe-client tar', () => {
  test("streams a tree as a tar that Python's tarfile reads in stream mode, every member byte-exact and in order", async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 8 * 1024 * 1024 })
    const files: [string, Buffer][] = []
    for (let i = 0; i < 60; i++) files.push([`train/${String(i).padStart(4, '0')}.jpg`, writeFile(root, `train/${String(i).padStart(4, '0')}.jpg`, 1000 + i * 1777)])
    files.push(['train/zz/empty.bin', writeFile(root, 'train/zz/empty.bin', 0)])
    files.push(['train/zz/shard.tar', writeFile(root, 'train/zz/shard.tar', 20 * 1024 * 1024 + 5)]) // larger than the cache: streamed alone
    writeFile(root, 'other/not-included.bin', 10)
    const r = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar train | python3 -c "$0"`, READER], { timeout: 60_000 })
    assert.equal(r.code, 0, r.stderr)
    const got = r.stdout.toString().trim().split('\n')
    const expected = await Promise.all(files.map(async ([name, data]) => `${name} ${data.length} ${await sha(data)}`))
    assert.deepEqual(got, expected)
  })

  test('archives the paths of a --list file, in the order listed', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 5000)
    const b = writeFile(root, 'd/b.bin', 7000)
    const list = join(root, 'list.txt')
    writeFileSync(list, 'd/b.bin\na.bin\n')
    const r = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar --list "${list}" | python3 -c "$0"`, READER], { timeout: 30_000 })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.toString().trim().split('\n'), [`d/b.bin 7000 ${await sha(b)}`, `a.bin 5000 ${await sha(a)}`])
  })

  test('a big file whose size changed since it was listed fails with ECHANGED before any of its bytes are archived', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'big.bin', 18 * 1024 * 1024) // over the size fetched whole (16 MiB)
    const client = await connect(url)
    t.after(() => client.close())
    const out: Buffer[] = []
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        out.push(chunk)
        cb()
      },
    })
    // As if ls had said 1 MiB less: the file grew since.
    const listed = [{ path: 'big.bin', size: 17 * 1024 * 1024 }]
    await assert.rejects(writeTar(client, listed, sink), (err: NodeJS.ErrnoException) => err.code === 'ECHANGED')
    const archived = Buffer.concat(out).length
    assert.ok(archived <= 512, `only the header may have gone out, not ${archived} bytes`)
  })

  test('fails with exit 1 and the code when a listed path is missing', async (t) => {
    const { url, root } = await startServer(t)
    const list = join(root, 'list.txt')
    writeFileSync(list, 'nope.bin\n')
    const r = await run(process.execPath, [CLIENT_BIN, '--server', url, 'tar', '--list', list])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /ENOENT: /)
    assert.equal(r.stdout.length, 0)
  })
})
