import assert from 'node:assert/strict'
import { describe, test, type TestContext } from 'node:test'
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { statSync, utimesSync, writeFileSync } from 'node:fs'
import { Writable } from 'node:stream'
import { connect } from '../../lib/client/client.js'
import { writeTar } from '../../lib/cli/tar.js'
import { join } from 'node:path'
import { CLIENT_BIN, run, startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { loopbackProxy } from '../helpers/proxy.js'
import { PYTHON_CLIENT, READER, VERIFIER } from '../helpers/tar-readers.js'

const MANIFEST = '.cacheserv-manifest.json'

/** A shell pipeline with its stdin and stdout as pipes, its stdout collected. */
function pipeline(t: Pick<TestContext, 'after'>, script: string, args: string[] = []): { child: ChildProcessWithoutNullStreams; out: () => string; err: () => string; closed: Promise<number | null> } {
  const child = spawn('sh', ['-c', script, 'sh', ...args])
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const closed = once(child, 'close').then(([code]) => {
    clearTimeout(timer)
    return code as number | null
  })
  t.after(() => {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  return { child, out: () => out, err: () => err, closed }
}

/** Resolves once `check()` holds; fails after `ms` saying what was seen. */
async function until(check: () => boolean, what: () => string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** A Writable that keeps what is written to it. */
function collector(): { out: Buffer[]; sink: Writable } {
  const out: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk)
      cb()
    },
  })
  return { out, sink }
}

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
    assert.deepEqual(got.slice(0, -1), expected)
    assert.ok(got.at(-1)!.startsWith(`${MANIFEST} `), `the manifest is the last member, not ${got.at(-1)}`)
  })

  test('a big file whose size changed since it was listed fails with ECHANGED before any of its bytes are archived', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'big.bin', 18 * 1024 * 1024) // over the size fetched whole (16 MiB)
    const client = await connect(url)
    t.after(() => client.close())
    const { out, sink } = collector()
    // As if ls had said 1 MiB less: the file grew since.
    const listed = [{ path: 'big.bin', size: 17 * 1024 * 1024 }]
    await assert.rejects(writeTar(client, listed, sink), (err: NodeJS.ErrnoException) => err.code === 'ECHANGED')
    const archived = Buffer.concat(out).length
    assert.ok(archived <= 512, `only the header may have gone out, not ${archived} bytes`)
  })

  test('small files go out in readv batches, not a read each; a big one, or one bigger than a list\'s probe, is streamed at its turn', async (t) => {
    const { url, root } = await startServer(t)
    const small = Array.from({ length: 600 }, (_, i) => ({ path: `s/${String(i).padStart(4, '0')}.bin`, data: writeFile(root, `s/${String(i).padStart(4, '0')}.bin`, 1000 + ((i * 7919) % 120_000)) }))
    const mid = writeFile(root, 'mid.bin', 3 * 1024 * 1024 + 5) // over a list's 1 MiB probe
    const big = writeFile(root, 'big.bin', 17 * 1024 * 1024) // over the 16 MiB fetched whole
    const ops: string[] = []
    const proxied = await loopbackProxy(t, url, (upstream, client) => {
      let text = ''
      client.on('data', (c: Buffer) => {
        text += c.toString()
        const lines = text.split('\n')
        text = lines.pop()!
        for (const line of lines) ops.push((JSON.parse(line) as { op: string }).op)
      })
      upstream.pipe(client)
    })
    for (const sized of [true, false]) {
      ops.length = 0
      const client = await connect(proxied)
      t.after(() => client.close())
      const { out, sink } = collector()
      const files = [...small.slice(0, 300), { path: 'mid.bin', data: mid }, { path: 'big.bin', data: big }, ...small.slice(300)]
      await writeTar(client, files.map((f) => (sized ? { path: f.path, size: f.data.length } : { path: f.path })), sink, { manifest: false })
      const r = spawnSync('python3', ['-c', READER], { input: Buffer.concat(out), maxBuffer: 64 * 1024 * 1024 })
      assert.equal(r.status, 0, r.stderr.toString())
      const want = await Promise.all(files.map(async (f) => `${f.path} ${f.data.length} ${await sha(f.data)}`))
      assert.deepEqual(r.stdout.toString().trim().split('\n'), want, `sizes known: ${sized}`)
      const count = (op: string) => ops.filter((o) => o === op).length
      // 256 paths a batch when the sizes are known; a list's files go out as its probes' window allows.
      assert.ok(count('readv') >= 1 && count('readv') <= (sized ? 4 : 40), `readv requests with sizes known ${sized}: ${count('readv')}`)
      // Streamed at its turn: the big file, and (sizes unknown) the file over the probe.
      assert.equal(count('read'), sized ? 1 : 2, `read requests with sizes known ${sized}: ${JSON.stringify(ops)}`)
      await client.close()
    }
  })

  test('a small file that grew since it was listed fails with ECHANGED, the members before it whole', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 3000)
    writeFile(root, 'b.bin', 200_000)
    const client = await connect(url)
    t.after(() => client.close())
    const { out, sink } = collector()
    // As if the tree had said 100,000 bytes: it grew since.
    const listed = [{ path: 'a.bin', size: 3000 }, { path: 'b.bin', size: 100_000 }]
    await assert.rejects(writeTar(client, listed, sink), (err: NodeJS.ErrnoException) => err.code === 'ECHANGED')
    // a.bin whole, then the mark of a failed stream: nothing of b.bin.
    const r = spawnSync('python3', ['-c', READER], { input: Buffer.concat(out) })
    assert.notEqual(r.status, 0)
    assert.equal(r.stdout.toString(), `a.bin 3000 ${await sha(a)}\n`)
    assert.match(r.stderr.toString(), /ReadError/)
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

  test("a complete archive ends with the manifest, and the Python client's iter_tar verifies it", async (t) => {
    const { url, root } = await startServer(t)
    const files: [string, Buffer][] = []
    for (let i = 0; i < 30; i++) files.push([`train/${i}.bin`, writeFile(root, `train/${i}.bin`, 100 + i * 999)])
    files.sort(([a], [b]) => (a < b ? -1 : 1))
    const p = pipeline(t, `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar train | python3 -c "$1" "$2"`, [VERIFIER, PYTHON_CLIENT])
    p.child.stdin.end()
    assert.equal(await p.closed, 0, p.err())
    const expected = await Promise.all(files.map(async ([name, data]) => `${name} ${data.length} ${await sha(data)}`))
    assert.deepEqual(p.out().trim().split('\n'), [...expected, 'verified'])
    // What the manifest says, read by plain tarfile.
    const m = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar train | python3 -c "$0"`, `
import json, sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as t:
    for m in t:
        data = t.extractfile(m).read()
    print(m.name, data.decode().strip())
`])
    assert.equal(m.code, 0, m.stderr)
    const [name, json] = m.stdout.toString().trim().split(' ')
    assert.equal(name, MANIFEST)
    const manifest = JSON.parse(json) as { version: number; files: number; bytes: number; sha256: string }
    assert.equal(manifest.version, 1)
    assert.equal(manifest.files, 30)
    assert.equal(manifest.bytes, files.reduce((n, [, d]) => n + d.length, 0))
    const crypto = await import('node:crypto')
    const digest = crypto.createHash('sha256')
    for (const [n, d] of files) digest.update(`${n}\0${d.length}\0${await sha(d)}\n`)
    assert.equal(manifest.sha256, digest.digest('hex'))
    // --no-manifest: a plain archive.
    const plain = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar --no-manifest train | python3 -c "$0"`, READER])
    assert.equal(plain.code, 0, plain.stderr)
    assert.deepEqual(plain.stdout.toString().trim().split('\n'), expected)
  })

  for (const reader of ['tarfile', 'iter_tar'] as const) {
    test(`the server killed mid-archive: Python's ${reader} reading the pipe fails instead of ending quietly`, async (t) => {
      const root = tempDir(t)
      // More than the client fetches ahead (64 MiB), so the archive cannot be whole before the kill.
      const size = 1024 * 1024
      const paths: string[] = []
      for (let i = 0; i < 120; i++) {
        paths.push(`d/${String(i).padStart(3, '0')}.bin`)
        writeFile(root, paths[i], size)
      }
      const server = await startServerProcess(t, ['--root', root, '--port', '0'])
      const go = join(root, 'go')
      // Python starts reading only once told, so the client has filled the pipe and waits on it.
      const wait = `import os, time\nwhile not os.path.exists(${JSON.stringify(go)}): time.sleep(0.02)\n`
      // No pipefail: the pipeline's status is Python's, as in a plain `client tar | python` line.
      const p = reader === 'tarfile'
        ? pipeline(t, `"${process.execPath}" "${CLIENT_BIN}" --server ${server.url} tar d | python3 -c "$1"`, [wait + READER])
        : pipeline(t, `"${process.execPath}" "${CLIENT_BIN}" --server ${server.url} tar d | python3 -c "$1" "$2"`, [wait + VERIFIER, PYTHON_CLIENT])
      // The client fetches small files ahead, up to 64 MiB: once the server has sent most of that, it waits for room.
      await until(
        () => {
          const r = spawnSync(process.execPath, [CLIENT_BIN, '--server', server.url, 'stats', '--json'])
          return r.status === 0 && (JSON.parse(r.stdout.toString()) as { bytesServed: number }).bytesServed >= 48 * size
        },
        () => `the client did not fetch ahead; stderr ${p.err()}`,
      )
      process.kill(server.child.pid!, 'SIGKILL')
      await once(server.child, 'exit')
      writeFileSync(go, '')
      const code = await p.closed
      // Those archived before the kill, in order, and no more.
      const names = p.out().trim().split('\n').map((l) => l.split(' ')[0])
      assert.ok(names.length >= 1 && names.length < paths.length, names.join(' '))
      assert.deepEqual(names, paths.slice(0, names.length))
      assert.notEqual(code, 0, `python must not succeed on a cut archive; stderr: ${p.err()}`)
      assert.doesNotMatch(p.out(), /verified/)
      if (reader === 'tarfile') assert.match(p.err(), /tarfile\.ReadError/)
      else assert.match(p.err(), /CacheservError: ECORRUPT: /)
    })
  }

  test("the server killed while the client waits between members: Python's tarfile fails instead of ending quietly", async (t) => {
    const root = tempDir(t)
    const paths: string[] = []
    for (let i = 0; i < 10; i++) {
      paths.push(`d/${i}.bin`)
      writeFile(root, paths[i], 3000 + i)
    }
    // A read of a file changed within --settle waits: the client sits between members, all written.
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--settle', '3'])
    await new Promise((resolve) => setTimeout(resolve, 3100))
    writeFile(root, 'd/9.bin', 3009)
    const p = pipeline(t, `"${process.execPath}" "${CLIENT_BIN}" --server ${server.url} tar d | python3 -c "$1"`, [READER])
    await until(() => p.out().includes('\n'), () => `python printed ${JSON.stringify(p.out())}; stderr ${p.err()}`)
    // Every settled member has been served (tarfile reads the pipe in 10 KiB records, so Python's
    // output lags); a moment more for the client to write the last of them to the pipe.
    const settled = paths.slice(0, 9).reduce((n, _, i) => n + 3000 + i, 0)
    const watcher = await connect(server.url)
    let served = 0
    const poll = setInterval(() => void watcher.stats().then((s) => (served = s.bytesServed), () => {}), 20)
    await until(() => served >= settled, () => `${served} of ${settled} bytes served`)
    clearInterval(poll)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await watcher.close()
    process.kill(server.child.pid!, 'SIGKILL')
    const code = await p.closed
    assert.deepEqual(p.out().trim().split('\n').map((l) => l.split(' ')[0]), paths.slice(0, 9))
    assert.notEqual(code, 0, `python must not succeed on a cut archive; stderr: ${p.err()}`)
    assert.match(p.err(), /tarfile\.ReadError/)
  })

  test("members carry their files' mtimes, from a tree and from a --list", async (t) => {
    const { url, root } = await startServer(t)
    const mtimes = new Map<string, number>()
    for (const [i, name] of ['m/a.bin', 'm/b.bin', 'm/c/d.bin'].entries()) {
      writeFile(root, name, 2000 * (i + 1))
      const when = new Date(Date.UTC(2019, i, 10 + i, 8, 30, 15))
      utimesSync(join(root, name), when, when)
      mtimes.set(name, Math.floor(statSync(join(root, name)).mtimeMs / 1000))
    }
    const big = 'm/z-big.bin' // streamed, not fetched ahead
    writeFile(root, big, 17 * 1024 * 1024)
    utimesSync(join(root, big), new Date(Date.UTC(2018, 5, 1)), new Date(Date.UTC(2018, 5, 1)))
    mtimes.set(big, Math.floor(statSync(join(root, big)).mtimeMs / 1000))
    const MTIMES = `
import sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as t:
    for m in t:
        if m.name != '${MANIFEST}':
            print(m.name, m.mtime)
`
    const expected = [...mtimes].map(([name, s]) => `${name} ${s}`)
    const tree = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar m | python3 -c "$0"`, MTIMES], { timeout: 60_000 })
    assert.equal(tree.code, 0, tree.stderr)
    assert.deepEqual(tree.stdout.toString().trim().split('\n'), expected)
    const list = join(root, 'list.txt')
    writeFileSync(list, [...mtimes.keys()].reverse().join('\n'))
    const listed = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar --list "${list}" | python3 -c "$0"`, MTIMES], { timeout: 60_000 })
    assert.equal(listed.code, 0, listed.stderr)
    assert.deepEqual(listed.stdout.toString().trim().split('\n'), [...expected].reverse())
  })
})
