/**
 * widePipe: the pipe on stdout grown to 1 MiB and made a splice target, so
 * `read f | python` moves blocks of the server's shared memory into it
 * without a copy; null where that cannot be.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, constants, openSync, readSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { PIPE_BYTES, widePipe } from '../../lib/cli/stdout-pipe.js'
import { CLIENT_BIN, run } from '../helpers/cli.js'
import { noSharedMemory, tempDir, writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { assertSameBytes } from '../helpers/suite.js'

const skip = noSharedMemory(shmNative())

/** Both ends of a fresh named pipe in one non-blocking descriptor (the open waits for nobody). */
function pipeFd(t: TestContext): number {
  const path = join(tempDir(t), 'pipe')
  assert.equal(spawnSync('mkfifo', [path]).status, 0)
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK)
  t.after(() => closeSync(fd))
  return fd
}

describe('widePipe', { skip }, () => {
  test('grows a pipe to PIPE_BYTES (1 MiB) and reports its size and the bytes in it', (t) => {
    assert.equal(PIPE_BYTES, 1024 * 1024)
    const fd = pipeFd(t)
    const target = widePipe(fd)
    assert.ok(target, 'a pipe can be widened')
    assert.equal(target.size(), PIPE_BYTES)
    assert.equal(target.unread(), 0)
  })

  test('splices a range of a file into the pipe, where it reads back byte for byte', (t) => {
    const dir = tempDir(t)
    const data = writeFile(dir, 'f.bin', 300_000)
    const from = openSync(join(dir, 'f.bin'), 'r')
    t.after(() => closeSync(from))
    const fd = pipeFd(t)
    const target = widePipe(fd)!
    let moved = 0
    while (moved < 200_000) moved += target.splice(from, 12_345 + moved, 200_000 - moved)
    assert.equal(target.unread(), 200_000)
    const back = Buffer.alloc(200_000)
    let got = 0
    while (got < back.length) got += readSync(fd, back, got, back.length - got, null)
    assertSameBytes(back, data.subarray(12_345, 212_345))
    assert.equal(target.unread(), 0)
  })

  test('anything that is not a pipe gives null, without a throw', (t) => {
    const dir = tempDir(t)
    writeFile(dir, 'f.bin', 10)
    const file = openSync(join(dir, 'f.bin'), 'r')
    t.after(() => closeSync(file))
    assert.equal(widePipe(file), null)
    assert.equal(widePipe(-1), null)
  })
})

describe('the client CLI\'s read into a pipe, on the server\'s host', { skip }, () => {
  test('gets exactly a range of a file, moved from the server\'s shared memory into the pipe', async (t) => {
    const { server, url, root } = await startServer(t)
    const big = writeFile(root, 'big.bin', 3 * 1024 * 1024 + 123)
    const script = '{ "$1" "$2" --server "$3" read big.bin --offset 4097 --length 2500000; echo "rc=$?" >&2; } | { sleep 0.2; cat; }'
    const r = await run('sh', ['-c', script, 'sh', process.execPath, CLIENT_BIN, url])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big.subarray(4097, 4097 + 2_500_000))
    assert.match(r.stderr, /^rc=0$/m, `stderr: ${r.stderr}`)
    const s = server.stats()
    assert.equal(s.bytesServed, 0, 'no byte crossed the socket')
    assert.equal(s.locatedBytes, 2_500_000)
  })
})
