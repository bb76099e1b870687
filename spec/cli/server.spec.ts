/**
 * End-to-end tests of `cacheserv-pipe`, the server command: options, the
 * "listening on" line, unix sockets, signals and exit codes. Real processes,
 * real files in temp dirs, loopback port 0 only.
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { before, describe, it, type TestContext } from 'node:test'
import { run, runClient, SERVER_BIN, type ServerProcess, startServerProcess } from '../helpers/cli.js'
import { spawn } from 'node:child_process'
import { type Client, connect } from '../../lib/client/client.js'
import { VERSION } from '../../lib/version.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { suiteScope, assertSameBytes } from '../helpers/suite.js'
import { poll, within } from '../helpers/wait.js'

/** Run the server command to completion (for the ones that must refuse to start). */
function runServer(args: string[]) {
  return run(process.execPath, [SERVER_BIN, ...args], { timeout: 10_000 })
}

/** Start the server command and wait for its first `n` lines on stdout (killed when the test ends). */
async function startForLines(t: TestContext, args: string[], n: number): Promise<{ lines: string[]; stderr: () => string }> {
  const child = spawn(process.execPath, [SERVER_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  let out = ''
  let err = ''
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  child.stdout.on('data', (c: Buffer) => (out += c.toString()))
  const ready = await poll(() => out.split('\n').length > n || child.exitCode !== null, 10_000)
  assert.ok(ready && child.exitCode === null, `server did not print ${n} lines: ${out}${err}`)
  return { lines: out.split('\n').slice(0, n), stderr: () => err }
}

const KiB = 1024
const MiB = 1024 * KiB
const MULTI_MIB = 3 * MiB + 777

describe('cacheserv-pipe on TCP', () => {
  const scope = suiteScope()
  let root: string
  let server: ServerProcess
  let data: Buffer

  before(async () => {
    root = tempDir(scope)
    data = writeFile(root, 'data.bin', 1000)
    server = await startServerProcess(scope, ['--root', root, '--host', '127.0.0.1', '--port', '0'])
  })

  it('prints one line "listening on tcp://127.0.0.1:PORT" with the picked port', () => {
    assert.match(server.line, /listening on tcp:\/\/127\.0\.0\.1:\d+/)
    const port = Number(/tcp:\/\/127\.0\.0\.1:(\d+)/.exec(server.line)![1])
    assert.ok(port > 0 && port <= 65535, `port ${port}`)
  })

  it('its line says the version, the address, the root, the cache and where it lives, the page size, the checksum and the policy', async () => {
    const client = await connect(server.url)
    const inShm = (await client.stats()).shm !== null
    await client.close()
    const where = inShm ? ' in shared memory' : ''
    assert.equal(server.line, `cacheserv-pipe ${VERSION} listening on ${server.url} (root ${realpathSync(root)}, cache 1 GiB${where}, pages 256 KiB, crc32, tinylfu)`)
  })

  it('serves the root it was given', async () => {
    const r = await runClient(server.url, ['read', 'data.bin'])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, data)
  })

  it('keeps serving after a client error', async () => {
    const bad = await runClient(server.url, ['read', 'missing.bin'])
    assert.equal(bad.code, 1)
    assert.match(bad.stderr, /ENOENT:/)
    const r = await runClient(server.url, ['stat', 'data.bin'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal((JSON.parse(r.stdout.toString()) as { size: number }).size, 1000)
  })
})

describe('cacheserv-pipe stops cleanly on signals', () => {
  const scope = suiteScope()
  let root: string

  before(() => {
    root = tempDir(scope)
    writeFile(root, 'x.txt', 'x\n')
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} exits 0 and the port no longer answers`, async () => {
      const server = await startServerProcess(scope, ['--root', root, '--port', '0'])
      const before = await runClient(server.url, ['read', 'x.txt'])
      assert.equal(before.code, 0, before.stderr)
      const { code, signal: killedBy } = await server.stop(signal)
      assert.equal(killedBy, null, server.stderr())
      assert.equal(code, 0, server.stderr())
      const afterStop = await runClient(server.url, ['read', 'x.txt'])
      assert.equal(afterStop.code, 1)
      assert.match(afterStop.stderr, /ECONNECT:/)
    })
  }
})

describe('cacheserv-pipe on SIGTERM with requests running', () => {
  const BIG = 64 * MiB
  const scope = suiteScope()
  let root: string
  before(() => {
    root = tempDir(scope)
    writeFile(root, 'big.bin', BIG)
  })

  it(
    'SIGTERM sent as soon as the "listening" line appears still exits 0',
    async (t) => {
      const results: unknown[] = []
      for (let i = 0; i < 6; i++) {
        const server = await startServerProcess(t, ['--root', root, '--port', '0'])
        results.push(await server.stop('SIGTERM'))
      }
      assert.deepEqual(results, results.map(() => ({ code: 0, signal: null })))
    },
  )

  /** The slow read across a SIGTERM, run once by the first test below; the second judges its end. */
  let slow: { got: number; outcome: string } | null = null

  it('SIGTERM during a slow read keeps serving it with correct bytes, then exits 0', async (t) => {
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--grace', '40'])
    const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    const client: Client = await connect(server.url)
    t.after(() => client.close())
    const fd = openSync(join(root, 'big.bin'), 'r')
    t.after(() => closeSync(fd))
    let got = 0
    let firstBad = -1
    let outcome = 'ok'
    let signalled = false
    let aliveAtQuarter = false
    try {
      for await (const chunk of client.read('big.bin', { highWaterMark: 16 * KiB })) {
        const c = chunk as Buffer
        const expected = Buffer.alloc(c.length)
        readSync(fd, expected, 0, c.length, got)
        if (firstBad < 0 && !expected.equals(c)) firstBad = got
        // 48 MiB still to come cannot all sit in buffers: a server alive here did not stop at the signal.
        if (got < BIG / 4 && got + c.length >= BIG / 4) aliveAtQuarter = server.child.exitCode === null && server.child.signalCode === null
        got += c.length
        if (!signalled) {
          signalled = true
          server.child.kill('SIGTERM')
        }
        await sleep(3) // a slow consumer
      }
    } catch (err) {
      outcome = String((err as { code?: unknown }).code)
    }
    slow = { got, outcome }
    assert.ok(signalled)
    assert.ok(await poll(() => /SIGTERM, closing/.test(server.stderr())), 'the server saw the signal')
    assert.ok(aliveAtQuarter, 'the server was still serving a quarter into the read, after SIGTERM')
    assert.equal(firstBad, -1, 'every byte delivered is the file\'s')
    // That the very end (last pages and END) arrives too is the test below.
    assert.ok(got >= BIG - 1 * MiB, `the client got ${got} of ${BIG} bytes (${outcome})`)
    assert.ok(await within(exited, 15_000), 'the server exited once the read was done')
    assert.deepEqual(await exited, [0, null])
  })

  it(
    'the read across SIGTERM arrives complete at the slow reader',
    () => {
      assert.ok(slow, 'the read ran')
      assert.deepEqual(slow, { got: BIG, outcome: 'ok' })
    },
  )

  it('a second SIGTERM during the grace period exits at once with code 1', async (t) => {
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--grace', '60'])
    const exited = once(server.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
    const client = await connect(server.url)
    // A read whose reader never reads holds the grace period open.
    const stream = client.read('big.bin', { highWaterMark: 16 * KiB })
    stream.on('error', () => {})
    t.after(async () => {
      stream.destroy() // not needed since client.close() fails held reads, but keeps this test about the server
      await client.close()
    })
    const started = await within(once(stream, 'info'), 5000)
    assert.ok(started, 'the read started')
    server.child.kill('SIGTERM')
    assert.ok(await poll(() => /SIGTERM, closing/.test(server.stderr())), 'the first SIGTERM started the shutdown')
    assert.equal(server.child.exitCode, null, 'still in its grace period')
    server.child.kill('SIGTERM')
    assert.ok(await within(exited, 5000), 'exited right after the second signal')
    assert.deepEqual(await exited, [1, null])
    assert.match(server.stderr(), /again/)
  })
})

describe('cacheserv-pipe on a unix socket', () => {
  const scope = suiteScope()
  let root: string
  let sockDir: string
  let sock: string
  let server: ServerProcess
  let data: Buffer

  before(async () => {
    root = tempDir(scope)
    sockDir = tempDir(scope, 'cacheserv-sock-')
    sock = join(sockDir, 'server.sock')
    data = writeFile(root, 'dir with space/ünïcødé 名前.bin', 300_000)
    writeFile(root, 'a.txt', 'a\n')
    server = await startServerProcess(scope, ['--root', root, '--socket', sock])
  })

  it('prints "listening on unix:PATH" and creates the socket file', () => {
    assert.ok(server.line.includes(`listening on unix:${sock}`), server.line)
    assert.equal(server.url, `unix:${sock}`)
    assert.ok(existsSync(sock))
  })

  it('serves byte-exact reads to a client given unix:PATH', async () => {
    const r = await runClient(`unix:${sock}`, ['read', 'dir with space/ünïcødé 名前.bin'])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, data)
  })

  it('serves ls to a client given unix:PATH', async () => {
    const r = await runClient(`unix:${sock}`, ['ls'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), 'a.txt\ndir with space/\n')
  })

  it('SIGTERM exits 0 and removes the socket file', async () => {
    const { code, signal } = await server.stop('SIGTERM')
    assert.equal(signal, null, server.stderr())
    assert.equal(code, 0, server.stderr())
    assert.equal(existsSync(sock), false, 'socket file removed')
  })
})

describe('cacheserv-pipe with --checksum md5 --page-size 1KiB --cache-size 1MiB', () => {
  const scope = suiteScope()
  let server: ServerProcess
  let big: Buffer

  before(async () => {
    const root = tempDir(scope)
    big = writeFile(root, 'big.bin', MULTI_MIB)
    server = await startServerProcess(scope, ['--root', root, '--port', '0', '--checksum', 'md5', '--page-size', '1KiB', '--cache-size', '1MiB'])
  })

  it('starts and reports the options it runs with', () => {
    assert.match(server.line, /listening on tcp:\/\/127\.0\.0\.1:\d+/)
    assert.match(server.line, /md5/)
  })

  it('gives a byte-exact read of a multi-MiB file (larger than the cache)', async () => {
    const r = await runClient(server.url, ['read', 'big.bin'])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big)
  })

  it('gives a byte-exact read again after evictions', async () => {
    const r = await runClient(server.url, ['read', 'big.bin'])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big)
  })

  it('gives a byte-exact unaligned range across pages and blocks', async () => {
    const offset = 1024 * 1024 - 1000
    const length = 1024 * 1024 + 2049
    const r = await runClient(server.url, ['read', 'big.bin', '--offset', String(offset), '--length', String(length)])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big.subarray(offset, offset + length))
  })
})

describe('cacheserv-pipe accepts sizes in human units', () => {
  const scope = suiteScope()

  it('--cache-size 2G --page-size 512KiB --checksum crc32 starts and serves', async () => {
    const root = tempDir(scope)
    const big = writeFile(root, 'big.bin', MULTI_MIB)
    const server = await startServerProcess(scope, ['--root', root, '--port', '0', '--cache-size', '2G', '--page-size', '512KiB', '--checksum', 'crc32'])
    const r = await runClient(server.url, ['read', 'big.bin'])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, big)
    const { code } = await server.stop('SIGINT')
    assert.equal(code, 0, server.stderr())
  })
})

describe('cacheserv-pipe passes its policy, socket and limit flags through', () => {
  const scope = suiteScope()

  it('--policy lru --socket-mode 660 --max-connections 1 --max-in-flight 2 --idle-timeout 30 --grace 1 --max-request 4KiB', async () => {
    const root = tempDir(scope)
    writeFile(root, 'a.txt', 'hello')
    const socket = join(root, 's.sock')
    const flags = ['--policy', 'lru', '--socket-mode', '660', '--max-connections', '1', '--max-in-flight', '2', '--idle-timeout', '30', '--grace', '1', '--max-request', '4KiB']
    const server = await startServerProcess(scope, ['--root', root, '--socket', socket, ...flags])
    assert.match(server.line, /lru/)
    assert.equal(statSync(socket).mode & 0o777, 0o660)
    const client = await connect(server.url)
    try {
      assert.equal((await client.stats()).policy, 'lru')
      // The one allowed connection is taken: the next is turned away.
      await assert.rejects(connect(server.url), { code: 'EBUSY' })
      // A request line over 4 KiB closes the connection with ETOOBIG.
      await assert.rejects(client.stat('x'.repeat(5000)), { code: 'ETOOBIG' })
    } finally {
      await client.close()
    }
    const { code } = await server.stop('SIGTERM')
    assert.equal(code, 0, server.stderr())
  })

  it('refuses a --socket-mode that is not octal, with exit 2', async () => {
    const r = await run(process.execPath, [SERVER_BIN, '--root', '.', '--socket-mode', 'rw', '--port', '0'])
    assert.equal(r.code, 2, r.stderr)
  })
})

describe('the cacheserv-pipe bin', () => {
  it('keeps its shebang within the 127 bytes that kernels before 5.1 read', () => {
    // A longer line is cut there, and node gets a broken flag (the server does not start).
    const line = readFileSync(SERVER_BIN, 'utf8').split('\n', 1)[0]!
    assert.ok(Buffer.byteLength(line) <= 127, `shebang is ${Buffer.byteLength(line)} bytes: ${line}`)
  })
})

describe('cacheserv-pipe refuses bad invocations', () => {
  const scope = suiteScope()
  let root: string

  before(() => {
    root = tempDir(scope)
    writeFile(root, 'file.txt', 'not a directory\n')
  })

  it('--help prints usage with --root and exits 0', async () => {
    const r = await runServer(['--help'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout.toString(), /Usage: cacheserv-pipe/)
    for (const opt of ['--root', '--port', '--socket', '--cache-size', '--page-size', '--checksum']) {
      assert.ok(r.stdout.toString().includes(opt), `help mentions ${opt}`)
    }
  })

  it('--help shows defaults the way they are typed: sizes with units, the socket mode in octal', async () => {
    const help = (await runServer(['--help'])).stdout.toString().replace(/\s+/g, ' ')
    for (const shown of ['(default: 1GiB)', '(default: 256KiB)', '(default: 64KiB)', '(default: 600)', '(default: 7070)']) {
      assert.ok(help.includes(shown), `help shows ${shown}`)
    }
    assert.doesNotMatch(help, /default: (1073741824|262144|65536|384)\)/)
  })

  const usage: Array<[string, string[]]> = [
    ['missing --root', ['--port', '0']],
    ['--cache-size abc', ['--cache-size', 'abc']],
    ['--page-size abc', ['--page-size', 'abc']],
    ['--page-size below 1KiB', ['--page-size', '512']],
    ['--page-size above 16MiB', ['--page-size', '32MiB']],
    ['--port abc', ['--port', 'abc']],
    ['--port 70000', ['--port', '70000']],
    ['--checksum sha1', ['--checksum', 'sha1']],
    ['an unknown option', ['--frobnicate']],
    ['--redis without a scheme', ['--redis', '10.0.0.5:7000']],
    ['--redis with TLS (rediss://)', ['--redis', 'rediss://10.0.0.5:7000']],
    ['--redis naming a database', ['--redis', 'redis://10.0.0.5:7000/2']],
    ['--redis-timeout 0', ['--redis', 'redis://127.0.0.1:1', '--redis-timeout', '0']],
  ]
  for (const [what, args] of usage) {
    it(`${what} exits 2 with a message`, async () => {
      const full = what === 'missing --root' ? args : ['--root', root, '--port', '0', ...args]
      const r = await runServer(full)
      assert.equal(r.code, 2, `stderr: ${r.stderr}`)
      assert.notEqual(r.stderr, '')
      assert.doesNotMatch(r.stdout.toString(), /listening on/)
    })
  }

  // The root does not exist: should the token check ever fail to stop it, the server still dies on the
  // root before it could listen, so these tests can never bind a non-loopback address.
  const noRoot = (t: TestContext) => join(tempDir(t), 'no-such-root')

  it('--host 0.0.0.0 without a token or --insecure-no-auth exits 2 naming CACHESERV_TOKEN and --insecure-no-auth', async (t) => {
    const r = await run(process.execPath, [SERVER_BIN, '--root', noRoot(t), '--host', '0.0.0.0', '--port', '0'], {
      env: { CACHESERV_TOKEN: undefined },
      timeout: 10_000,
    })
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /CACHESERV_TOKEN/)
    assert.match(r.stderr, /--insecure-no-auth/)
    assert.doesNotMatch(r.stdout.toString(), /listening/)
  })

  it('an empty CACHESERV_TOKEN counts as no token', async (t) => {
    const r = await run(process.execPath, [SERVER_BIN, '--root', noRoot(t), '--host', '0.0.0.0', '--port', '0'], {
      env: { CACHESERV_TOKEN: '' },
      timeout: 10_000,
    })
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /CACHESERV_TOKEN/)
  })

  it('an empty --token ("$TOKEN" unset) exits 2 rather than accepting an empty secret', async () => {
    const r = await runServer(['--root', root, '--host', '0.0.0.0', '--port', '0', '--token', ''])
    assert.equal(r.code, 2, `stderr: ${r.stderr}`)
    assert.match(r.stderr, /--token is empty/)
    assert.doesNotMatch(r.stdout.toString(), /listening on/)
  })

  it('--max-connections 0 and --max-in-flight 0 exit 2 and say at least 1', async () => {
    for (const flag of ['--max-connections', '--max-in-flight']) {
      const r = await runServer(['--root', root, '--port', '0', flag, '0'])
      assert.equal(r.code, 2, `${flag}: ${r.stderr}`)
      assert.match(r.stderr, /--max-connections and --max-in-flight must be at least 1/)
    }
  })

  it('--http that is not HOST:PORT exits 2 naming the value', async (t) => {
    for (const value of ['nonsense', 'unix:/tmp/x.sock', '127.0.0.1']) {
      const r = await runServer(['--root', noRoot(t), '--port', '0', '--http', value])
      assert.equal(r.code, 2, `${value}: ${r.stderr}`)
      assert.ok(r.stderr.includes(`--http ${value}: give HOST:PORT`), r.stderr)
    }
  })

  it('--http on a non-loopback host without a token exits 2 and says why', async (t) => {
    const r = await run(process.execPath, [SERVER_BIN, '--root', noRoot(t), '--port', '0', '--http', '0.0.0.0:0'], { env: { CACHESERV_TOKEN: undefined }, timeout: 10_000 })
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /refusing to serve HTTP on 0\.0\.0\.0 without a token/)
    assert.doesNotMatch(r.stdout.toString(), /listening/)
  })

  it('--root /nonexistent exits 1 with a message naming the root', async () => {
    const missing = join(root, 'nonexistent')
    const r = await runServer(['--root', missing, '--port', '0'])
    assert.equal(r.code, 1, `stderr: ${r.stderr}`)
    assert.ok(r.stderr.includes(missing), r.stderr)
    assert.doesNotMatch(r.stdout.toString(), /listening on/)
  })

  it('--root /nonexistent (absolute, outside any temp dir) exits 1', async () => {
    const r = await runServer(['--root', '/nonexistent', '--port', '0'])
    assert.equal(r.code, 1, `stderr: ${r.stderr}`)
    assert.match(r.stderr, /\/nonexistent/)
  })

  it('--shm-dir inside a directory that does not exist exits 1 naming the store, not the root', async () => {
    const store = join(root, 'nonexistent', 'store')
    const r = await runServer(['--root', root, '--port', '0', '--shm-dir', store])
    assert.equal(r.code, 1, `stderr: ${r.stderr}`)
    assert.match(r.stderr, /ENOENT: the shared-memory store .*nonexistent\/store/)
    assert.doesNotMatch(r.stderr, /root \S+ (does not exist|is not a directory)/)
    assert.doesNotMatch(r.stdout.toString(), /listening on/)
  })

  it('a port in use exits 1 with one line saying so, and leaves no store behind', async (t) => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    t.after(() => new Promise<void>((resolve) => taken.close(() => resolve())))
    const port = (taken.address() as net.AddressInfo).port
    const store = join(tempDir(t), 'store')
    const r = await runServer(['--root', root, '--port', String(port), '--shm-dir', store])
    assert.equal(r.code, 1, `stderr: ${r.stderr}`)
    assert.match(r.stderr, new RegExp(`^cacheserv-pipe: EADDRINUSE: cannot listen on tcp://127\\.0\\.0\\.1:${port}`))
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.doesNotMatch(r.stderr, /Unhandled|at .*\.js:\d+/)
    assert.deepEqual(existsSync(store) ? readdirSync(store) : [], [], 'the store the server made is gone')
  })

  it('a --pin the cache cannot hold exits 1 and leaves no store behind', async (t) => {
    const pinRoot = tempDir(t)
    writeFileSync(join(pinRoot, 'big.bin'), Buffer.alloc(6 * 1024 * 1024, 1))
    const store = join(tempDir(t), 'store')
    const r = await runServer(['--root', pinRoot, '--port', '0', '--cache-size', '4MiB', '--pin', 'big.bin', '--shm-dir', store])
    assert.equal(r.code, 1, `stderr: ${r.stderr}`)
    assert.match(r.stderr, /--pin big\.bin: ENOSPC: /)
    assert.deepEqual(existsSync(store) ? readdirSync(store) : [], [], 'the store the server made is gone')
  })

  it('--root naming a regular file exits 1', async (t) => {
    let outcome: string
    try {
      const server = await startServerProcess(t, ['--root', join(root, 'file.txt'), '--port', '0'])
      outcome = `started: ${server.line}`
      await server.stop('SIGKILL')
    } catch (err) {
      outcome = (err as Error).message
    }
    assert.match(outcome, /exited with 1 before listening/)
  })
})

describe('cacheserv-pipe --http', () => {
  it('serves the root over HTTP too, on a second line with its address; an http:// prefix and a trailing slash are taken', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.txt', 'over http\n')
    const { lines } = await startForLines(t, ['--root', root, '--port', '0', '--no-shm', '--http', 'http://127.0.0.1:0/'], 2)
    assert.match(lines[0], /listening on tcp:\/\/127\.0\.0\.1:\d+ /)
    const m = /^cacheserv-pipe \S+ listening on (http:\/\/127\.0\.0\.1:\d+) \(the same root over HTTP; metrics at \/-\/metrics\)$/.exec(lines[1])
    assert.ok(m, lines[1])
    const res = await fetch(`${m[1]}/a.txt`)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'over http\n')
  })
})

describe('cacheserv-pipe with a token', () => {
  it('warns that a token shorter than 16 characters can be guessed, and serves', async (t) => {
    const root = tempDir(t)
    const short = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--token', 'short-token'])
    assert.match(short.stderr(), /warning: a token shorter than 16 characters can be guessed; make one with: openssl rand -hex 16/)
    const long = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--token', 'a-token-long-enough-1234'])
    assert.doesNotMatch(long.stderr(), /token/)
  })

  it('on a unix socket, --host is not used: no token is needed whatever it says', async (t) => {
    const root = tempDir(t)
    const sock = join(tempDir(t, 'cacheserv-sock-'), 's.sock')
    const server = await startServerProcess(t, ['--root', root, '--no-shm', '--socket', sock, '--host', '0.0.0.0'])
    assert.equal(server.url, `unix:${sock}`)
  })
})

describe('cacheserv-pipe --no-shm', () => {
  it('keeps blocks on the heap, and its line says nothing of shared memory', async (t) => {
    const root = tempDir(t)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm'])
    assert.match(server.line, /\(root \S+, cache 1 GiB, pages/)
    const client = await connect(server.url)
    t.after(() => client.close())
    assert.equal((await client.stats()).shm, null)
  })
})

describe('cacheserv-pipe --redis', () => {
  it('a Redis that does not answer at start is a warning, not a failure', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.txt', 'from disk')
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--redis', 'redis://127.0.0.1:1'])
    assert.ok(await poll(() => /warning: Redis at redis:\/\/127\.0\.0\.1:1 does not answer; blocks come from disk until it does/.test(server.stderr()), 10_000), server.stderr())
    const r = await runClient(server.url, ['read', 'a.txt'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), 'from disk')
  })
})

describe('cacheserv-pipe --pin', () => {
  it('pins before serving, and says how much', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a/x.bin', 5000)
    writeFile(root, 'a/y.bin', 300)
    writeFile(root, 'b.bin', 300)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--settle', '0', '--pin', 'a', '--pin', 'b.bin'])
    assert.match(server.stderr(), /^cacheserv-pipe: pinned 2 files, 5\.18 KiB, under a$/m)
    assert.match(server.stderr(), /^cacheserv-pipe: pinned 1 files, 300 B, under b\.bin$/m)
    const client = await connect(server.url)
    t.after(() => client.close())
    assert.equal((await client.stat('a/x.bin')).pinned, true)
    assert.equal((await client.stats()).pinnedFiles, 3)
  })
})

describe('cacheserv-pipe --writable', () => {
  it('says it is writable in its first line, and only then', async (t) => {
    const root = tempDir(t)
    const writable = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--writable'])
    assert.match(writable.line, /, writable\)$/)
    const readOnly = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm'])
    assert.doesNotMatch(readOnly.line, /writable/)
  })
})

describe('cacheserv-pipe --warm', () => {
  it('has the tree cached shortly after start, and says so on stderr', async (t) => {
    const root = tempDir(t)
    let subBytes = 0
    for (let i = 0; i < 3; i++) subBytes += writeFile(root, `sub/${i}.bin`, 500_000).length
    writeFile(root, 'cold.bin', 100_000)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '4MiB', '--warm', 'sub'])
    const client = await connect(server.url)
    t.after(() => client.close())
    let cacheBytes = -1
    const until = Date.now() + 5000
    while (Date.now() < until) {
      cacheBytes = (await client.stats()).cacheBytes
      if (cacheBytes === subBytes && /warmed/.test(server.stderr())) break
      await new Promise((r) => setTimeout(r, 50))
    }
    assert.equal(cacheBytes, subBytes)
    assert.equal((await client.stats()).cacheLimit, 4 * 1024 * 1024)
    assert.match(server.stderr(), /^cacheserv-pipe: warmed 3 files/m)
  })

  it('a --warm path that is not there is reported, and the server serves on', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.txt', 'a')
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--no-shm', '--warm', 'nope'])
    assert.ok(await poll(() => /warm nope: ENOENT: /.test(server.stderr()), 10_000), server.stderr())
    const r = await runClient(server.url, ['read', 'a.txt'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(server.child.exitCode, null)
  })

  it('warms beside serving and warns when the tree is larger than the cache', async (t) => {
    const root = tempDir(t)
    for (let i = 0; i < 6; i++) writeFile(root, `shard-${i}.bin`, 1024 * 1024)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '4MiB', '--warm', '.', '--settle', '0'])
    const until = Date.now() + 10_000
    while (!/warmed \d+ files/.test(server.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    assert.match(server.stderr(), /warning: \. holds more than the 4 MiB cache; raise --cache-size/)
    assert.match(server.stderr(), /warmed \d+ files, .* of 6 files, 6 MiB .*the cache is full/)
  })

  it('says nothing of the sort when the tree fits', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'small.bin', 1000)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--warm', '', '--settle', '0'])
    const until = Date.now() + 10_000
    while (!/warmed \d+ files/.test(server.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    assert.match(server.stderr(), /warmed 1 files, 1000 B/)
    assert.doesNotMatch(server.stderr(), /warning/)
  })

  it('warns when the first tree listing shows more than the cache holds', async (t) => {
    const root = tempDir(t)
    for (let i = 0; i < 6; i++) writeFile(root, `train/shard-${i}.bin`, 1024 * 1024)
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--cache-size', '4MiB', '--settle', '0'])
    const r = await runClient(server.url, ['tree', 'train'])
    assert.equal(r.code, 0, r.stderr)
    const until = Date.now() + 5000
    while (!/warning/.test(server.stderr()) && Date.now() < until) await new Promise((res) => setTimeout(res, 20))
    assert.match(server.stderr(), /warning: train holds more than the cache \(6\.0 MiB listed so far, cache 4\.0 MiB\)/)
  })
})
