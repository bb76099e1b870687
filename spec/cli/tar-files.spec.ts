/**
 * tarFiles: what `tar` archives, in order: the tree under a directory, with
 * sizes, or the paths of a list (a file, or stdin), read as they come.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { tarFiles } from '../../lib/cli/tar-files.js'
import type { TarFile } from '../../lib/cli/tar.js'
import { CLIENT_BIN, run } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'
import { within } from '../helpers/wait.js'
import { PYTHON_CLIENT, READER, VERIFIER } from '../helpers/tar-readers.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** Resolves once `check()` holds; fails after `ms` saying what was seen. */
async function until(check: () => boolean, what: () => string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function collect(files: AsyncIterable<TarFile>): Promise<TarFile[]> {
  const out: TarFile[] = []
  for await (const f of files) out.push(f)
  return out
}

describe('tarFiles', () => {
  test('a directory gives its tree with sizes, depth first in name order; slashes around it do not matter', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'd/b.bin', 7)
    writeFile(root, 'd/a/z.bin', 3)
    writeFile(root, 'd/a/y.bin', 0)
    writeFile(root, 'other.bin', 1)
    const client = await connectTo(t, url)
    const expected = [
      { path: 'd/a/y.bin', size: 0 },
      { path: 'd/a/z.bin', size: 3 },
      { path: 'd/b.bin', size: 7 },
    ]
    for (const dir of ['d', '/d/', '//d']) assert.deepEqual(await collect(tarFiles(client, dir, undefined)), expected, dir)
    assert.equal((await collect(tarFiles(client, '/', undefined))).length, 4, 'the whole root')
  })

  test('a list gives its paths in its order, without sizes, and is read from the list alone', async (t) => {
    const { url } = await startServer(t)
    const client = await connectTo(t, url)
    const list = join(tempDir(t), 'list.txt')
    writeFileSync(list, 'z/missing.bin\n\n  a b.bin \nfirst.bin\n')
    // Nothing is asked of the server: the paths need not exist until they are read.
    assert.deepEqual(await collect(tarFiles(client, 'ignored', list)), [{ path: 'z/missing.bin' }, { path: 'a b.bin' }, { path: 'first.bin' }])
  })

  test('archives the paths of a --list file, in the order listed', async (t) => {
    const { url, root } = await startServer(t)
    const a = writeFile(root, 'a.bin', 5000)
    const b = writeFile(root, 'd/b.bin', 7000)
    const list = join(root, 'list.txt')
    writeFileSync(list, 'd/b.bin\na.bin\n')
    const r = await run('sh', ['-c', `"${process.execPath}" "${CLIENT_BIN}" --server ${url} tar --list "${list}" | python3 -c "$0"`, READER], { timeout: 30_000 })
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.stdout.toString().trim().split('\n').slice(0, -1), [`d/b.bin 7000 ${sha(b)}`, `a.bin 5000 ${sha(a)}`])
  })

  test('tar --list starts archiving before the list has ended: the first member comes out while the last paths are not yet written', async (t) => {
    const { url, root } = await startServer(t)
    const paths: string[] = []
    for (let i = 0; i < 2000; i++) {
      paths.push(`s/${String(i).padStart(4, '0')}.txt`)
      writeFile(root, paths[i], `file ${i}\n`)
    }
    const child = spawn(process.execPath, [CLIENT_BIN, '--server', url, 'tar', '--list', '-'])
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    t.after(() => {
      clearTimeout(timer)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    const chunks: Buffer[] = []
    let err = ''
    child.stdout.on('data', (c: Buffer) => chunks.push(c))
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    const closed = once(child, 'close')
    child.stdin.write(paths.slice(0, 5).join('\n') + '\n')
    // A header and a data block: the first member, whole.
    await until(() => Buffer.concat(chunks).length >= 1024, () => `${Buffer.concat(chunks).length} bytes out; stderr ${err}`)
    assert.equal(Buffer.concat(chunks).subarray(0, 100).toString('latin1').replace(/\0+$/, ''), paths[0])
    child.stdin.end(paths.slice(5).join('\n') + '\n')
    const [code] = (await closed) as [number | null]
    assert.equal(code, 0, err)
    const check = spawn('python3', ['-c', VERIFIER, PYTHON_CLIENT])
    let verified = ''
    check.stdout.on('data', (c: Buffer) => (verified += c.toString()))
    check.stdin.end(Buffer.concat(chunks))
    await once(check, 'close')
    const lines = verified.trim().split('\n')
    assert.equal(lines.length, 2001)
    assert.deepEqual(lines.slice(0, -1).map((l) => l.split(' ')[0]), paths)
    assert.equal(lines.at(-1), 'verified')
  })

  test('tar --list - that fails while the list is still open exits 1 at once, not when the list ends', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'a.bin', 3000)
    const child = spawn(process.execPath, [CLIENT_BIN, '--server', url, 'tar', '--list', '-'], { stdio: ['pipe', 'ignore', 'pipe'] })
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let err = ''
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.stdin.on('error', () => {})
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    child.stdin.write('a.bin\nmissing.bin\n') // then the list waits for more, never ended
    assert.ok(await within(exited, 10_000), `still running after the failure; stderr: ${err}`)
    assert.deepEqual(await exited, [1, null])
    assert.match(err, /ENOENT: .*missing\.bin/)
  })
})
