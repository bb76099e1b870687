/**
 * Blocking writes to stdout for the client CLI's `read`: a pipe on fd 1 is
 * opened again as a blocking descriptor (Node makes fd 1 non-blocking), and
 * writeAllSync writes every byte, waiting out EAGAIN on a descriptor that
 * stayed non-blocking.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import fs, { closeSync, constants, openSync, readFileSync } from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { writeAllSync } from '../../lib/cli/write-sync.js'
import { CLIENT_BIN, run } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { assertSameBytes } from '../helpers/suite.js'
import { within } from '../helpers/wait.js'

const WRITE_SYNC = new URL('../../lib/cli/write-sync.js', import.meta.url).href

/**
 * stdoutForSyncWrites looks at the process's own fd 1, so it runs in a child
 * that uses process.stdout (which makes a pipe on fd 1 non-blocking),
 * takes stdoutForSyncWrites(), reports on stderr what it got and whether each
 * descriptor is non-blocking, then writes `bytes` bytes through it.
 */
const PROBE = `
  import { readFileSync } from 'node:fs'
  const { stdoutForSyncWrites, writeAllSync } = await import(${JSON.stringify(WRITE_SYNC)})
  const nonBlocking = (fd) => (parseInt(/^flags:\\s+(\\d+)/m.exec(readFileSync('/proc/self/fdinfo/' + fd, 'utf8'))[1], 8) & 0o4000) !== 0
  process.stdout.write('')
  const out = stdoutForSyncWrites()
  process.stderr.write(JSON.stringify({ fd: out.fd, pipe: out.pipe, nonBlocking: nonBlocking(out.fd), fd1NonBlocking: nonBlocking(1) }) + '\\n')
  writeAllSync(out.fd, Buffer.alloc(Number(process.argv[1]), 0x61))
  out.close()
`

function fifo(t: TestContext): string {
  const path = join(tempDir(t), 'pipe')
  assert.equal(spawnSync('mkfifo', [path]).status, 0)
  return path
}

/** writeSync as the module sees it (its named import follows the fs object once synced), failing with `code` the first `times` calls. */
function failingWrites(t: TestContext, code: string, times: number): { calls: () => number } {
  const real = fs.writeSync
  let calls = 0
  const flaky = ((fd: number, buf: Uint8Array, offset: number, length: number) => {
    if (++calls <= times) throw Object.assign(new Error(`${code}: fake`), { code })
    return real(fd, buf, offset, length)
  }) as typeof fs.writeSync
  t.mock.method(fs, 'writeSync', flaky)
  syncBuiltinESMExports()
  t.after(() => {
    t.mock.restoreAll()
    syncBuiltinESMExports()
  })
  return { calls: () => calls }
}

describe('stdoutForSyncWrites', () => {
  test('a pipe on fd 1 is opened again as a blocking descriptor of the same pipe', async () => {
    const r = await run('sh', ['-c', `"$0" --input-type=module -e "$1" 300000 | wc -c`, process.execPath, PROBE])
    assert.equal(r.code, 0, r.stderr)
    const got = JSON.parse(r.stderr) as { fd: number; pipe: boolean; nonBlocking: boolean; fd1NonBlocking: boolean }
    assert.equal(got.pipe, true)
    assert.notEqual(got.fd, 1)
    assert.equal(got.fd1NonBlocking, true, 'Node made fd 1 non-blocking')
    assert.equal(got.nonBlocking, false, 'the descriptor returned blocks')
    assert.equal(r.stdout.toString().trim(), '300000', 'the bytes written to it came out of the pipe')
  })

  test('a file on fd 1 is written as fd 1', async (t) => {
    const out = join(tempDir(t), 'out')
    const r = await run('sh', ['-c', `"$0" --input-type=module -e "$1" 1000 > "$2"`, process.execPath, PROBE, out])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stderr), { fd: 1, pipe: false, nonBlocking: false, fd1NonBlocking: false })
    assert.equal(readFileSync(out).length, 1000)
  })

  test('a pipe whose reader is gone is left as fd 1, without waiting for a reader that never comes; writes then fail with EPIPE', async (t) => {
    const path = fifo(t)
    const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
    const writer = openSync(path, constants.O_WRONLY)
    closeSync(reader)
    const child = spawn(process.execPath, ['--input-type=module', '-e', PROBE, '10'], { stdio: ['ignore', writer, 'pipe'] })
    closeSync(writer)
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    })
    let err = ''
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()))
    const exited = once(child, 'exit')
    assert.ok(await within(exited, 10_000), `hung: ${err}`)
    assert.equal(JSON.parse(err.split('\n')[0]).fd, 1)
    assert.equal(JSON.parse(err.split('\n')[0]).pipe, false)
    assert.match(err, /EPIPE/)
  })
})

describe('writeAllSync', () => {
  test('writes every byte into a non-blocking pipe whose reader is slow, waiting whenever it is full', async (t) => {
    const path = fifo(t)
    const out = join(tempDir(t), 'out')
    // Read-write: the open does not wait for a reader, and the descriptor never blocks.
    const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
    let open = true
    t.after(() => void (open && closeSync(fd)))
    const reader = spawn('sh', ['-c', 'sleep 0.3; exec cat "$0" > "$1"', path, out], { stdio: 'ignore' })
    const data = Buffer.alloc(4 * 1024 * 1024)
    for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i)
    writeAllSync(fd, data)
    closeSync(fd)
    open = false
    assert.ok(await within(once(reader, 'exit'), 10_000), 'cat saw the end')
    assertSameBytes(readFileSync(out), data)
  })

  test('EAGAIN is waited out, the write goes on where it stopped', (t) => {
    const file = join(tempDir(t), 'f')
    const fd = openSync(file, 'w')
    t.after(() => closeSync(fd))
    const writes = failingWrites(t, 'EAGAIN', 3)
    writeAllSync(fd, Buffer.from('hello'))
    assert.equal(writes.calls(), 4)
    assert.equal(readFileSync(file, 'utf8'), 'hello')
  })

  test('any other error is thrown, as EPIPE when the reader went away', (t) => {
    const fd = openSync(join(tempDir(t), 'f'), 'w')
    t.after(() => closeSync(fd))
    const writes = failingWrites(t, 'EPIPE', 1)
    assert.throws(() => writeAllSync(fd, Buffer.from('x')), { code: 'EPIPE' })
    assert.equal(writes.calls(), 1, 'not tried again')
  })

  test('an empty chunk writes nothing', (t) => {
    const writes = failingWrites(t, 'EBADF', 1)
    writeAllSync(-1, Buffer.alloc(0))
    assert.equal(writes.calls(), 0)
  })
})

describe('the client CLI\'s read into a slow pipe', () => {
  test('gets exactly the file: the client waits for it (blocking writes), exit 0', async (t) => {
    // Blocks on the heap: the bytes come over the socket and go out through writeAllSync.
    const { url, root } = await startServer(t, { shmDir: false })
    const big = writeFile(root, 'big.bin', 3 * 1024 * 1024 + 123)
    // dd reads the pipe in 4 KiB pieces after a pause, so the pipe is full most of the time.
    const script = '{ "$1" "$2" --server "$3" read big.bin; echo "rc=$?" >&2; } | { sleep 0.3; dd bs=4096 status=none; }'
    const r = await run('sh', ['-c', script, 'sh', process.execPath, CLIENT_BIN, url])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big)
    assert.match(r.stderr, /^rc=0$/m, `stderr: ${r.stderr}`)
  })
})
