/**
 * End-to-end tests of `cacheserv-pipe-client`, every command: real server
 * and client processes, real files in a temp dir, loopback port 0 only.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import net from 'node:net'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { before, describe, it } from 'node:test'
import { POLICIES } from '../../lib/cache/policy.js'
import { CLIENT_BIN, run, type RunResult, runClient, type ServerProcess, startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { suiteScope, assertSameBytes } from '../helpers/suite.js'
import { STATS_NUMBERS } from '../helpers/stats.js'
import { startServer } from '../helpers/server.js'
import { VERSION } from '../../lib/version.js'

/** A loopback TCP address on which nothing listens. */
async function deadAddress(): Promise<string> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as net.AddressInfo
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return `tcp://127.0.0.1:${port}`
}

/** Run the client with `input` piped to its stdin (killed after 20 s so no test can hang). */
async function runClientWithStdin(url: string, args: string[], input: Buffer): Promise<RunResult> {
  const child = spawn(process.execPath, [CLIENT_BIN, '--server', url, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  const out: Buffer[] = []
  let err = ''
  child.stdout.on('data', (c: Buffer) => out.push(c))
  child.stderr.on('data', (c: Buffer) => (err += c.toString()))
  child.stdin.on('error', () => {}) // the client may exit (EROFS) before it has read everything
  child.stdin.end(input)
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null]
  clearTimeout(timer)
  return { code, signal, stdout: Buffer.concat(out), stderr: err }
}

async function statsJson(url: string): Promise<Record<string, unknown>> {
  const r = await runClient(url, ['stats', '--json'])
  assert.equal(r.code, 0, r.stderr)
  return JSON.parse(r.stdout.toString()) as Record<string, unknown>
}

/**
 * The start-up budget: importing the CLI must not load commander (~20-30 ms
 * as CommonJS from ESM), debug (without $DEBUG), nor what only some commands
 * or options need. A module hook in a child process records every import.
 */
const CLIENT_MODULE = new URL('../../lib/cli/client.js', import.meta.url).href

/** Reports every resolved URL to the main thread (hooks run on their own thread). */
const HOOK = 'let port; export function initialize(d) { port = d.port } export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r }'

const SCRIPT = `
import { register } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
const { port1, port2 } = new MessageChannel()
const urls = []
port1.on('message', (url) => urls.push(url))
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}), { data: { port: port2 }, transferList: [port2] })
await import(${JSON.stringify(CLIENT_MODULE)})
await new Promise((resolve) => setTimeout(resolve, 100))
port1.close()
console.log(JSON.stringify(urls))
`

const MiB = 1024 * 1024
const BIG = 3 * 1024 * 1024 + 123
const UNICODE = 'dir with space/ünïcødé 名前.bin'

describe('cacheserv-pipe-client against a running server', { concurrency: 4 }, () => {
  const scope = suiteScope()
  let server: ServerProcess
  let root: string
  let url: string
  let big: Buffer
  let range: Buffer
  let unicode: Buffer
  let one: Buffer

  before(async () => {
    root = tempDir(scope)
    writeFile(root, 'empty.bin', Buffer.alloc(0))
    one = writeFile(root, 'one.bin', Buffer.from([0xff]))
    big = writeFile(root, 'big.bin', BIG)
    range = writeFile(root, 'range.bin', Buffer.from(Array.from({ length: 100 }, (_, i) => i)))
    unicode = writeFile(root, UNICODE, 70_000)
    writeFile(root, 'Zeta.txt', 'capital letters sort first\n')
    writeFile(root, 'sub/b.txt', 'b\n')
    writeFile(root, 'sub/a.txt', 'a\n')
    writeFile(root, 'sub/nested/deep.txt', 'deep\n')
    mkdirSync(join(root, 'sub/empty-dir'))
    mkdirSync(join(root, 'links'))
    symlinkSync('../one.bin', join(root, 'links/inside'))
    symlinkSync('/etc/passwd', join(root, 'links/outside'))
    server = await startServerProcess(scope, ['--root', root, '--port', '0'])
    url = server.url
  })

  describe('read writes exactly the file bytes to stdout', () => {
    it('an empty file gives empty output and exit 0', async () => {
      const r = await runClient(url, ['read', 'empty.bin'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.length, 0)
      assert.equal(r.stderr, '')
    })

    it('a 1-byte file gives that byte', async () => {
      const r = await runClient(url, ['read', 'one.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, one)
    })

    it('a multi-MiB random file is byte-exact', async () => {
      const r = await runClient(url, ['read', 'big.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big)
    })

    it('a second read of the same file (now from the cache) is byte-exact too', async () => {
      const r = await runClient(url, ['read', 'big.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big)
    })

    it('a name with spaces and unicode is read as one argument', async () => {
      const r = await runClient(url, ['read', UNICODE])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, unicode)
    })

    it('redundant slashes and "." segments name the same file', async () => {
      const r = await runClient(url, ['read', './sub//a.txt'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), 'a\n')
    })

    it('a symlink that stays inside the root is followed', async () => {
      const r = await runClient(url, ['read', 'links/inside'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, one)
    })
  })

  describe('read --offset/--length reads a range', () => {
    const cases: Array<[string, string[], (b: Buffer) => Buffer]> = [
      ['offset 0 length 1 gives the first byte', ['--offset', '0', '--length', '1'], (b) => b.subarray(0, 1)],
      ['offset size-1 gives the last byte', ['--offset', '99'], (b) => b.subarray(99)],
      ['offset size-1 length 1 gives the last byte', ['--offset', '99', '--length', '1'], (b) => b.subarray(99)],
      ['a length past the end is clipped at EOF', ['--offset', '90', '--length', '1000'], (b) => b.subarray(90)],
      ['offset == size gives empty output', ['--offset', '100'], () => Buffer.alloc(0)],
      ['offset == size with a length gives empty output', ['--offset', '100', '--length', '5'], () => Buffer.alloc(0)],
      ['length 0 gives empty output', ['--offset', '10', '--length', '0'], () => Buffer.alloc(0)],
      ['only --length reads from the start', ['--length', '10'], (b) => b.subarray(0, 10)],
      ['a middle range', ['--offset', '37', '--length', '13'], (b) => b.subarray(37, 50)],
    ]
    for (const [title, args, expected] of cases) {
      it(title, async () => {
        const r = await runClient(url, ['read', 'range.bin', ...args])
        assert.equal(r.code, 0, r.stderr)
        assertSameBytes(r.stdout, expected(range))
      })
    }

    it('a range of a multi-MiB file crossing page and block boundaries is byte-exact', async () => {
      const offset = 1024 * 1024 - 5000
      const length = 2 * 1024 * 1024 + 12345
      const r = await runClient(url, ['read', 'big.bin', '--offset', String(offset), '--length', String(length)])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big.subarray(offset, offset + length))
    })

    it('the last byte of a multi-MiB file', async () => {
      const r = await runClient(url, ['read', 'big.bin', '--offset', String(BIG - 1)])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big.subarray(BIG - 1))
    })

    it('offsets and lengths accept human units (1KiB = 1024)', async () => {
      const r = await runClient(url, ['read', 'big.bin', '--offset', '1KiB', '--length', '2'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big.subarray(1024, 1026))
    })

    it('offset > size exits 1 with ERANGE and writes nothing to stdout', async () => {
      const r = await runClient(url, ['read', 'range.bin', '--offset', '101'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ERANGE:/)
      assert.equal(r.stdout.length, 0)
    })
  })

  describe('ls prints one entry a line, sorted, directories ending in /', () => {
    it('lists the root', async () => {
      const r = await runClient(url, ['ls'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(
        r.stdout.toString(),
        ['Zeta.txt', 'big.bin', 'dir with space/', 'empty.bin', 'links/', 'one.bin', 'range.bin', 'sub/'].map((l) => l + '\n').join(''),
      )
    })

    it('lists a subdirectory', async () => {
      const r = await runClient(url, ['ls', 'sub'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), 'a.txt\nb.txt\nempty-dir/\nnested/\n')
    })

    it('lists a directory whose name has spaces, showing unicode names as UTF-8', async () => {
      const r = await runClient(url, ['ls', 'dir with space'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString('utf8'), 'ünïcødé 名前.bin\n')
    })

    it('an empty directory prints nothing', async () => {
      const r = await runClient(url, ['ls', 'sub/empty-dir'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.length, 0)
    })

    it('hides a symlink that points outside the root', async () => {
      const r = await runClient(url, ['ls', 'links'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), 'inside\n')
    })

    it('--long puts the size of each file before its name, tab-separated', async () => {
      const r = await runClient(url, ['ls', '--long', 'sub'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), '2\ta.txt\n2\tb.txt\n-\tempty-dir/\n-\tnested/\n')
    })

    it('ls of a missing directory exits 1 with ENOENT', async () => {
      const r = await runClient(url, ['ls', 'nope'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ENOENT:/)
    })

    it('ls of a file exits 1 with ENOTDIR', async () => {
      const r = await runClient(url, ['ls', 'one.bin'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ENOTDIR:/)
    })

    it('ls ../ exits 1 with EACCES', async () => {
      const r = await runClient(url, ['ls', '..'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /EACCES:/)
    })
  })

  describe('tree prints every file under a directory, a line each', () => {
    it('size, a tab, the path, depth first in name order', async () => {
      const r = await runClient(url, ['tree', 'sub'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), '2\tsub/a.txt\n2\tsub/b.txt\n5\tsub/nested/deep.txt\n')
    })

    it('the whole root with --suffix, as JSON lines; symlinks out of the root never listed', async () => {
      const r = await runClient(url, ['tree', '--suffix', '.bin', '--json'])
      assert.equal(r.code, 0, r.stderr)
      const lines = r.stdout.toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { path: string; size: number })
      assert.deepEqual(lines, [
        { path: 'big.bin', size: big.length },
        { path: UNICODE, size: 70_000 },
        { path: 'empty.bin', size: 0 },
        { path: 'one.bin', size: 1 },
        { path: 'range.bin', size: 100 },
      ])
    })

    it('of a missing directory exits 1 with ENOENT', async () => {
      const r = await runClient(url, ['tree', 'nope'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ENOENT:/)
    })
  })

  describe('stat prints JSON', () => {
    it('of a file: path, type, size, mtime and cache state', async () => {
      const r = await runClient(url, ['stat', 'range.bin'])
      assert.equal(r.code, 0, r.stderr)
      const st = JSON.parse(r.stdout.toString()) as Record<string, unknown>
      const fsSt = statSync(join(root, 'range.bin'))
      assert.equal(st.path, 'range.bin')
      assert.equal(st.type, 'file')
      assert.equal(st.size, 100)
      assert.equal(typeof st.mtime, 'string')
      assert.equal(new Date(st.mtime as string).toISOString(), st.mtime, 'mtime is ISO 8601')
      assert.equal(st.mtime, new Date(fsSt.mtimeMs).toISOString())
      assert.equal(typeof st.mtimeMs, 'number')
      assert.equal(Math.floor(st.mtimeMs as number), Math.floor(fsSt.mtimeMs))
      assert.equal(typeof st.cachedBytes, 'number')
      assert.equal(typeof st.cached, 'boolean')
    })

    it('of an empty file: size 0', async () => {
      const r = await runClient(url, ['stat', 'empty.bin'])
      assert.equal(r.code, 0, r.stderr)
      const st = JSON.parse(r.stdout.toString()) as { size: number; type: string }
      assert.equal(st.size, 0)
      assert.equal(st.type, 'file')
    })

    it('of a file with spaces and unicode in its name', async () => {
      const r = await runClient(url, ['stat', UNICODE])
      assert.equal(r.code, 0, r.stderr)
      const st = JSON.parse(r.stdout.toString()) as { path: string; size: number }
      assert.equal(st.path, UNICODE)
      assert.equal(st.size, unicode.length)
    })

    it('of a directory: type dir', async () => {
      const r = await runClient(url, ['stat', 'sub'])
      assert.equal(r.code, 0, r.stderr)
      const st = JSON.parse(r.stdout.toString()) as { type: string }
      assert.equal(st.type, 'dir')
    })

    it('of a missing file exits 1 with ENOENT', async () => {
      const r = await runClient(url, ['stat', 'nope.bin'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ENOENT:/)
      assert.equal(r.stdout.length, 0)
    })

    it('of /etc/passwd exits 1 with EACCES', async () => {
      const r = await runClient(url, ['stat', '/etc/passwd'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /EACCES:/)
    })
  })

  describe('server errors exit 1 with CODE: message on stderr and nothing on stdout', () => {
    const cases: Array<[string, string, string]> = [
      ['a missing file', 'no-such-file.bin', 'ENOENT'],
      ['a missing directory on the way', 'no-such-dir/x.bin', 'ENOENT'],
      ['a directory', 'sub', 'EISDIR'],
      ['the root itself', '', 'EISDIR'],
      ['a path through a file', 'one.bin/x', 'ENOTDIR'],
      ['../etc/passwd', '../etc/passwd', 'EACCES'],
      ['sub/../../etc/passwd', 'sub/../../etc/passwd', 'EACCES'],
      ['/etc/passwd', '/etc/passwd', 'EACCES'],
      ['a symlink pointing outside the root', 'links/outside', 'EACCES'],
    ]
    for (const [what, path, code] of cases) {
      it(`read of ${what} → ${code}`, async () => {
        const r = await runClient(url, ['read', path])
        assert.equal(r.code, 1, `stderr: ${r.stderr}`)
        assert.match(r.stderr, new RegExp(`${code}: `))
        assert.equal(r.stdout.length, 0)
      })
    }
  })

  describe('local failures exit 1 too', () => {
    for (const command of [['stat', 'one.bin'], ['ls', 'sub'], ['stats']]) {
      it(`${command[0]} whose stdout cannot be written (> /dev/full) → ENOSPC`, async () => {
        const cmd = [process.execPath, CLIENT_BIN, '--server', url, ...command].map((a) => `'${a}'`).join(' ')
        const r = await run('sh', ['-c', `${cmd} > /dev/full`])
        assert.equal(r.code, 1, `stderr: ${r.stderr}`)
        assert.match(r.stderr, /ENOSPC: /)
      })
    }

    it('write to a read-only server exits 1 with EROFS at once, although stdin stays open', async () => {
      const child = spawn(process.execPath, [CLIENT_BIN, '--server', url, 'write', 'w.bin'], { stdio: ['pipe', 'ignore', 'pipe'] })
      let stderr = ''
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      const [code] = (await once(child, 'close')) as [number | null]
      clearTimeout(timer)
      child.stdin.destroy()
      assert.equal(code, 1, `stderr: ${stderr}`)
      assert.match(stderr, /EROFS: /)
    })

    it('write to a server not started writable exits 1 with EROFS and writes nothing', async () => {
      const r = await runClientWithStdin(url, ['write', 'sub/x.bin'], randomBytes(10_000))
      assert.equal(r.code, 1)
      assert.match(r.stderr, /EROFS:/)
      assert.equal(existsSync(join(root, 'sub/x.bin')), false)
    })
  })

  describe('server addresses', () => {
    it('CACHESERV_SERVER is used when --server is absent', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'read', 'range.bin'], { env: { CACHESERV_SERVER: url } })
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, range)
    })

    it('--server wins over CACHESERV_SERVER', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, '--server', url, 'ls', 'sub'], { env: { CACHESERV_SERVER: await deadAddress() } })
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), 'a.txt\nb.txt\nempty-dir/\nnested/\n')
    })

    it('HOST:PORT without tcp:// works', async () => {
      const hostPort = url.replace(/^tcp:\/\//, '')
      assert.match(hostPort, /^127\.0\.0\.1:\d+$/)
      const r = await runClient(hostPort, ['read', 'one.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, one)
    })

    it('an unreachable TCP server exits 1 with ECONNECT', async () => {
      const r = await runClient(await deadAddress(), ['read', 'one.bin'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ECONNECT:/)
      assert.equal(r.stdout.length, 0)
    })

    it('an unreachable unix socket exits 1 with ECONNECT', async () => {
      const r = await runClient(`unix:${join(root, 'no-such.sock')}`, ['ls'])
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ECONNECT:/)
    })

    it('CACHESERV_SERVER pointing nowhere exits 1 with ECONNECT', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'ls'], { env: { CACHESERV_SERVER: await deadAddress() } })
      assert.equal(r.code, 1)
      assert.match(r.stderr, /ECONNECT:/)
    })
  })

  describe('a reader that stops early (| head -c 10)', () => {
    it('read big | head -c 10 gives exactly 10 bytes and the client exits 0', async () => {
      // sh has no PIPESTATUS: the client's own exit code goes to stderr.
      const script = '{ "$1" "$2" --server "$3" read big.bin; echo "rc=$?" >&2; } | head -c 10'
      const r = await run('sh', ['-c', script, 'sh', process.execPath, CLIENT_BIN, url])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big.subarray(0, 10))
      assert.match(r.stderr, /^rc=0$/m, `stderr: ${r.stderr}`)
      assert.doesNotMatch(r.stderr, /EPIPE/)
    })

    it('closing the client stdout after 10 bytes: exit 0, no error', async (t) => {
      const child = spawn(process.execPath, [CLIENT_BIN, '--server', url, 'read', 'big.bin'], { stdio: ['ignore', 'pipe', 'pipe'] })
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      })
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      let got = Buffer.alloc(0)
      let stderr = ''
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
      child.stdout.on('data', (c: Buffer) => {
        got = Buffer.concat([got, c])
        if (got.length >= 10) child.stdout.destroy()
      })
      const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
      clearTimeout(timer)
      assert.equal(signal, null, `killed: ${stderr}`)
      assert.equal(code, 0, stderr)
      assertSameBytes(got.subarray(0, 10), big.subarray(0, 10))
      assert.equal(stderr, '')
    })

    it('the server still serves after clients went away mid-read', async () => {
      const r = await runClient(url, ['read', 'big.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big)
    })
  })

  describe('usage errors exit 2', () => {
    const cases: Array<[string, string[]]> = [
      ['an unknown command', ['frobnicate']],
      ['read without FILE', ['read']],
      ['stat without FILE', ['stat']],
      ['an unknown option', ['read', 'one.bin', '--frob']],
      ['--offset abc', ['read', 'one.bin', '--offset', 'abc']],
      ['--length abc', ['read', 'one.bin', '--length', 'abc']],
      ['--offset -1', ['read', 'one.bin', '--offset', '-1']],
      ['--offset without a value', ['read', 'one.bin', '--offset']],
      ['an extra argument to read', ['read', 'one.bin', 'two.bin']],
      ['--inject-faults with a bad rate', ['--inject-faults', 'lots', 'read', 'one.bin']],
      ['--inject-faults with a bad mode', ['--inject-faults', '1e-5:melt', 'read', 'one.bin']],
    ]
    for (const [what, args] of cases) {
      it(what, async () => {
        const r = await runClient(url, args)
        assert.equal(r.code, 2, `stderr: ${r.stderr}`)
        assert.notEqual(r.stderr, '')
        assert.equal(r.stdout.length, 0)
      })
    }

    it('no command at all prints usage to stderr', async () => {
      const r = await run(process.execPath, [CLIENT_BIN], { env: { CACHESERV_SERVER: url } })
      assert.equal(r.code, 2)
      assert.match(r.stderr, /Usage:/)
      assert.equal(r.stdout.length, 0)
    })

    it('a --server value that is not an address', async () => {
      const r = await runClient('not an address', ['ls'])
      assert.equal(r.code, 2, `stderr: ${r.stderr}`)
    })

    it('global options without a command print usage to stderr', async () => {
      const r = await runClient(url, [])
      assert.equal(r.code, 2)
      assert.match(r.stderr, /Usage: cacheserv-pipe-client/)
      assert.equal(r.stdout.length, 0)
    })

    const messages: Array<[string, string[], string]> = [
      ['an unknown command is named', ['frobnicate'], "error: unknown command 'frobnicate'\n"],
      ['an unknown option is named', ['read', 'one.bin', '--frob'], "error: unknown option '--frob'\n"],
      ['a command option before the command is unknown there', ['--offset', '1', 'read', 'one.bin'], "error: unknown option '--offset'\n"],
      ['a missing argument is named', ['stat'], "error: missing required argument 'file'\n"],
      ['an extra argument is counted', ['ls', 'a', 'b'], "error: too many arguments for 'ls'. Expected 1 argument but got 2.\n"],
      ['a missing value', ['read', 'one.bin', '--length'], "error: option '--length <n>' argument missing\n"],
      ['a value given to a flag', ['stats', '--json=yes'], "error: option '--json' does not take an argument\n"],
      ['a bad value says why', ['read', 'one.bin', '--offset', 'abc'], `error: option '--offset <n>' argument 'abc' is invalid. not a size: "abc" (try 4096, 64KiB, 512MiB, 2G)\n`],
    ]
    for (const [what, args, message] of messages) {
      it(`${what}, then a pointer to --help`, async () => {
        const r = await runClient(url, args)
        assert.equal(r.code, 2, `stderr: ${r.stderr}`)
        assert.equal(r.stderr, `${message}(add --help for usage)\n`)
        assert.equal(r.stdout.length, 0)
      })
    }
  })

  describe('global options after the command', () => {
    it('--server after the command and its arguments', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'read', 'range.bin', '--length', '3', '--server', url], { env: { CACHESERV_SERVER: await deadAddress() } })
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, range.subarray(0, 3))
    })

    it('--server=ADDR between the command and its argument', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'ls', `--server=${url}`, 'sub'])
      assert.equal(r.code, 0, r.stderr)
      assert.equal(r.stdout.toString(), 'a.txt\nb.txt\nempty-dir/\nnested/\n')
    })

    it('after --, an option-like word is an argument', async () => {
      const r = await runClient(url, ['stat', '--', '--help'])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /ENOENT:/)
    })
  })

  describe('--inject-faults damages received bytes and the NACK path repairs them', () => {
    it('still writes exactly the file, and reports the faults and NACKs on stderr', async () => {
      const r = await runClient(url, ['--inject-faults', '3e-6:mixed:9', 'read', 'big.bin'])
      assert.equal(r.code, 0, r.stderr)
      assertSameBytes(r.stdout, big)
      const m = /injected (\d+) faults; sent (\d+) NACKs/.exec(r.stderr)
      assert.ok(m, r.stderr)
      assert.ok(Number(m[1]) > 0 && Number(m[2]) > 0, r.stderr)
    })

    it('exits 1 with ECORRUPT or ETIMEDOUT when the damage is hopeless', async () => {
      const r = await runClient(url, ['--inject-faults', '0.01:flip', 'read', 'big.bin'])
      assert.equal(r.code, 1, r.stderr)
      assert.match(r.stderr, /(ECORRUPT|ETIMEDOUT): /)
      assert.ok(r.stdout.equals(big.subarray(0, r.stdout.length)), 'whatever reached stdout is a true prefix')
    })
  })

  describe('--help', () => {
    it('prints usage with the commands and exits 0', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, '--help'])
      assert.equal(r.code, 0, r.stderr)
      const out = r.stdout.toString()
      assert.match(out, /Usage: cacheserv-pipe-client/)
      for (const cmd of ['read', 'ls', 'stat', '--server']) assert.ok(out.includes(cmd), `help mentions ${cmd}`)
    })

    it('read --help describes --offset and --length and exits 0', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'read', '--help'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /--offset/)
      assert.match(r.stdout.toString(), /--length/)
    })

    it('lists every command and every global option with its description', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, '-h'])
      assert.equal(r.code, 0, r.stderr)
      const text = r.stdout.toString()
      for (const cmd of ['read', 'ls', 'stat', 'stats', 'warm', 'evict', 'tar', 'write', 'help']) assert.match(text, new RegExp(`^  ${cmd} `, 'm'), `help lists ${cmd}`)
      const out = text.replace(/\s+/g, ' ') // descriptions are wrapped
      assert.match(out, /--server <addr> server address: tcp:\/\/HOST:PORT/)
      assert.match(out, /--token <token> token for a server that needs one/)
      assert.match(out, /--inject-faults <rate\[:mode\[:seed\]\]> damage received bytes on purpose/)
      assert.match(out, /-V, --version output the version number/)
    })

    it('ls --help shows its argument and exits 0', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'ls', '--help'])
      assert.equal(r.code, 0, r.stderr)
      const out = r.stdout.toString()
      assert.match(out, /^Usage: cacheserv-pipe-client ls \[options\] \[dir\]$/m)
      assert.match(out, /dir +directory relative to the served root/)
      assert.match(out, /-h, --help +display help for command/)
      assert.match(out, /--server <addr>/, 'global options work after the command, so they are listed')
    })

    it('tar --help describes --list and exits 0', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'tar', '--help'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /--list <file> +read the paths to archive from this/)
    })

    it('help COMMAND is COMMAND --help', async () => {
      const a = await run(process.execPath, [CLIENT_BIN, 'help', 'stats'])
      const b = await run(process.execPath, [CLIENT_BIN, 'stats', '--help'])
      assert.equal(a.code, 0, a.stderr)
      assert.match(a.stdout.toString(), /--json +print JSON instead/)
      assert.deepEqual(a.stdout, b.stdout)
    })

    it('--help wins over mistakes on the same line', async () => {
      const r = await run(process.execPath, [CLIENT_BIN, 'read', '--frob', '--help'])
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout.toString(), /^Usage: cacheserv-pipe-client read /)
    })
  })

  describe('--version', () => {
    for (const flag of ['--version', '-V']) {
      it(`${flag} prints the version and exits 0`, async () => {
        const r = await run(process.execPath, [CLIENT_BIN, flag])
        assert.equal(r.code, 0, r.stderr)
        assert.equal(r.stdout.toString(), `${VERSION}\n`)
        assert.equal(r.stderr, '')
      })
    }
  })
})

describe('cache commands against a writable server process', () => {
  const scope = suiteScope()
  let server: ServerProcess
  let root: string
  let url: string
  let treeBytes: number

  before(async () => {
    root = tempDir(scope)
    treeBytes = 0
    for (const [rel, size] of [
      ['tree/a.bin', 2 * MiB + 9],
      ['tree/b.bin', 5000],
      ['tree/sub/c.bin', 300_000],
    ] as const) {
      treeBytes += writeFile(root, rel, size).length
    }
    writeFile(root, 'up/.keep', '')
    server = await startServerProcess(scope, ['--root', root, '--port', '0', '--writable'])
    url = server.url
  })

  it('stats prints a readable summary', async () => {
    const r = await runClient(url, ['stats'])
    assert.equal(r.code, 0, r.stderr)
    const text = r.stdout.toString()
    assert.match(text, /cache/)
    assert.match(text, /hits/)
    assert.throws(() => JSON.parse(text), 'the summary is not JSON')
  })

  it('stats --json prints JSON with every counter', async () => {
    const s = await statsJson(url)
    for (const k of STATS_NUMBERS) assert.equal(typeof s[k], 'number', `${k}: ${JSON.stringify(s[k])}`)
    assert.ok((s.connections as number) >= 1, 'its own connection is open')
  })

  it('stats --json includes the policy name, and the summary shows it', async () => {
    const s = await statsJson(url)
    assert.ok((POLICIES as readonly string[]).includes(s.policy as string), `policy ${JSON.stringify(s.policy)}`)
    const r = await runClient(url, ['stats'])
    assert.match(r.stdout.toString(), new RegExp(`policy ${String(s.policy)}`))
  })

  it('warm DIR exits 0, prints a "warmed" summary on stderr, and caches the tree', async () => {
    const r = await runClient(url, ['warm', 'tree'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^warmed 3 files/)
    assert.equal(r.stdout.length, 0)
    assert.equal((await statsJson(url)).cacheBytes, treeBytes)
  })

  it('warm of a missing path exits 1 with ENOENT', async () => {
    const r = await runClient(url, ['warm', 'nope'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /ENOENT:/)
  })

  it('warm --list FILE and --list - (stdin) load exactly the listed paths, naming those skipped', async () => {
    assert.equal((await runClient(url, ['evict'])).code, 0)
    const list = join(tempDir(scope), 'list.txt')
    writeFileSync(list, 'tree/b.bin\n\nnope.bin\ntree/sub/c.bin\n')
    const r = await runClient(url, ['warm', '--list', list])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^warmed 2 files/)
    assert.match(r.stderr, /skipped 1 listed paths \(nope\.bin: ENOENT\)/)
    assert.equal((await statsJson(url)).cacheBytes, 5000 + 300_000)
    const piped = await run('bash', ['-c', `printf 'tree/a.bin\\n' | "$0" "$1" --server "$2" warm --list -`, process.execPath, CLIENT_BIN, url])
    assert.equal(piped.code, 0, piped.stderr)
    assert.equal((await statsJson(url)).cacheBytes, treeBytes)
    const both = await runClient(url, ['warm', 'tree', '--list', list])
    assert.equal(both.code, 2, 'a path and a list: a usage error')
    assert.equal(both.stderr, 'error: warm takes a PATH or --list FILE, not both\n(add --help for usage)\n')
  })

  it('evict exits 0 and empties the cache', async () => {
    const r = await runClient(url, ['evict'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^evicted/)
    assert.equal((await statsJson(url)).cacheBytes, 0)
  })

  it('evict PATH exits 0 and drops just that file', async () => {
    assert.equal((await runClient(url, ['warm', 'tree'])).code, 0)
    const r = await runClient(url, ['evict', 'tree/a.bin'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal((await statsJson(url)).cacheBytes, treeBytes - (2 * MiB + 9))
  })

  it('write FILE stores stdin byte-exact', async () => {
    const input = randomBytes(3 * MiB + 77)
    const r = await runClientWithStdin(url, ['write', 'up/new.bin'], input)
    assert.equal(r.code, 0, r.stderr)
    assert.ok(readFileSync(join(root, 'up/new.bin')).equals(input))
    const back = await runClient(url, ['read', 'up/new.bin'])
    assert.ok(back.stdout.equals(input))
  })

  it('write FILE with empty stdin creates an empty file', async () => {
    const r = await runClientWithStdin(url, ['write', 'up/empty.bin'], Buffer.alloc(0))
    assert.equal(r.code, 0, r.stderr)
    assert.equal(readFileSync(join(root, 'up/empty.bin')).length, 0)
  })

  it('write into a missing directory exits 1 with ENOENT', async () => {
    const r = await runClientWithStdin(url, ['write', 'nodir/x.bin'], Buffer.from('x'))
    assert.equal(r.code, 1)
    assert.match(r.stderr, /ENOENT:/)
  })
})

describe('cacheserv-pipe-client start-up', () => {
  it('imports neither commander nor the packages of help, sizes or progress bars, nor the tar writer', async () => {
    const r = await run(process.execPath, ['--input-type=module', '-e', SCRIPT], { env: { DEBUG: '' } })
    assert.equal(r.code, 0, r.stderr)
    const urls = JSON.parse(r.stdout.toString()) as string[]
    assert.ok(urls.some((u) => u.endsWith('/lib/client/client.js')), 'the hook saw the imports')
    for (const pkg of ['commander', 'debug', 'filesize', 'cli-progress']) {
      assert.ok(!urls.some((u) => u.includes(`/node_modules/${pkg}/`)), `${pkg} is loaded: ${urls.join('\n')}`)
    }
    for (const mod of ['options', 'help', 'format', 'warm-progress', 'tar', 'tar-files', 'tar-format']) {
      assert.ok(!urls.some((u) => u.endsWith(`/lib/cli/${mod}.js`)), `lib/cli/${mod}.js is loaded`)
    }
    // Only for --inject-faults, and for md5 pages.
    assert.ok(!urls.some((u) => u.endsWith('/lib/stages/corrupt.js')), 'lib/stages/corrupt.js is loaded')
    assert.ok(!urls.includes('node:crypto'), 'node:crypto is loaded')
  })
})

describe('cacheserv-pipe-client --token', () => {
  it('against a server with --token: works with the token, exits 1 with EAUTH without it', async (t) => {
    const root = tempDir(t)
    writeFile(root, 'a.txt', 'guarded')
    const server = await startServerProcess(t, ['--root', root, '--port', '0', '--token', 's3cret'])
    const ok = await runClient(server.url, ['--token', 's3cret', 'read', 'a.txt'], { env: { CACHESERV_TOKEN: undefined } })
    assert.equal(ok.code, 0, ok.stderr)
    assert.equal(ok.stdout.toString(), 'guarded')
    const viaEnv = await runClient(server.url, ['read', 'a.txt'], { env: { CACHESERV_TOKEN: 's3cret' } })
    assert.equal(viaEnv.code, 0, viaEnv.stderr)
    assert.equal(viaEnv.stdout.toString(), 'guarded')
    const none = await runClient(server.url, ['read', 'a.txt'], { env: { CACHESERV_TOKEN: undefined } })
    assert.equal(none.code, 1)
    assert.match(none.stderr, /EAUTH:/)
    assert.equal(none.stdout.length, 0)
    const wrong = await runClient(server.url, ['--token', 'nope', 'ls'], { env: { CACHESERV_TOKEN: undefined } })
    assert.equal(wrong.code, 1)
    assert.match(wrong.stderr, /EAUTH:/)
    // The server is unharmed by the refusals.
    const again = await runClient(server.url, ['--token', 's3cret', 'stat', 'a.txt'])
    assert.equal(again.code, 0, again.stderr)
    assert.equal(JSON.parse(again.stdout.toString()).size, 7)
  })
})

describe('cacheserv-pipe-client output', () => {
  it('a failure is one line on stderr: the program, the code and the message', async (t) => {
    const { url } = await startServer(t)
    const r = await runClient(url, ['read', 'nope.bin'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /^cacheserv-pipe-client: ENOENT: [^\n]*nope\.bin[^\n]*\n$/)
  })

  it('--inject-faults reports its counts when the command fails too', async (t) => {
    const { url } = await startServer(t)
    const r = await runClient(url, ['--inject-faults', '0', 'read', 'nope.bin'])
    assert.equal(r.code, 1)
    assert.deepEqual(r.stderr.trim().split('\n').map((l) => l.replace(/ENOENT: .*/, 'ENOENT')), [
      'cacheserv-pipe-client: ENOENT',
      'cacheserv-pipe-client: injected 0 faults; sent 0 NACKs; lost the frame boundary 0 times; 0 progress timeouts',
    ])
  })

  it('tree prints every file of a listing longer than the batches it prints in, once each, in order', async (t) => {
    const { url, root } = await startServer(t)
    const names = Array.from({ length: 2500 }, (_, i) => `many/${String(i).padStart(4, '0')}.bin`)
    for (const n of names) writeFile(root, n, 'x')
    const r = await runClient(url, ['tree', 'many'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), names.map((n) => `1\t${n}\n`).join(''))
  })

  it('tree DIR with slashes around it lists the same as DIR', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'sub/a.txt', 'a')
    writeFile(root, 'sub/deeper/b.txt', 'bb')
    const plain = await runClient(url, ['tree', 'sub'])
    assert.equal(plain.stdout.toString(), '1\tsub/a.txt\n2\tsub/deeper/b.txt\n')
    for (const dir of ['/sub', 'sub/', '//sub//']) assert.deepEqual((await runClient(url, ['tree', dir])).stdout, plain.stdout, dir)
  })

  it('ls shows what is neither a file nor a directory by its name, with - for its size', async (t) => {
    const { url, root } = await startServer(t)
    writeFile(root, 'f.txt', 'abc')
    assert.equal(spawnSync('mkfifo', [join(root, 'fifo')]).status, 0)
    assert.equal((await runClient(url, ['ls'])).stdout.toString(), 'f.txt\nfifo\n')
    assert.equal((await runClient(url, ['ls', '--long'])).stdout.toString(), '3\tf.txt\n-\tfifo\n')
  })

  it('evict says what it dropped: bytes and blocks, and of how many files for a path', async (t) => {
    const { url, root } = await startServer(t, { shmDir: false })
    writeFile(root, 'd/a.bin', 2 * MiB)
    writeFile(root, 'd/b.bin', 10)
    writeFile(root, 'c.bin', 100)
    assert.equal((await runClient(url, ['warm'])).code, 0)
    const some = await runClient(url, ['evict', 'd'])
    assert.equal(some.code, 0, some.stderr)
    assert.equal(some.stderr, 'evicted 2 MiB in 3 blocks of 2 files\n')
    const all = await runClient(url, ['evict'])
    assert.equal(all.stderr, 'evicted 100 B in 1 blocks\n')
  })

  it('pin and unpin say what they pinned, and what is pinned in all', async (t) => {
    const { url, root } = await startServer(t, { shmDir: false })
    writeFile(root, 'a/x.bin', 5000)
    writeFile(root, 'b.bin', 300)
    let r = await runClient(url, ['pin', 'a'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, 'pinned 1 files, 4.88 KiB; 1 files, 4.88 KiB pinned in all\n')
    r = await runClient(url, ['pin', 'b.bin'])
    assert.equal(r.stderr, 'pinned 1 files, 300 B; 2 files, 5.18 KiB pinned in all\n')
    r = await runClient(url, ['stat', 'a/x.bin'])
    assert.equal(JSON.parse(r.stdout.toString()).pinned, true)
    r = await runClient(url, ['unpin', 'a'])
    assert.equal(r.stderr, 'unpinned 1 files, 4.88 KiB; 1 files, 300 B pinned in all\n')
    r = await runClient(url, ['unpin'])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^unpinned 1 files, 300 B; 0 files, 0 B pinned in all\n$/)
  })

  it('tar into a reader that stops early exits 0', async (t) => {
    const { url, root } = await startServer(t)
    for (let i = 0; i < 20; i++) writeFile(root, `t/${i}.bin`, 200_000)
    const script = '{ "$1" "$2" --server "$3" tar t; echo "rc=$?" >&2; } | head -c 1000 > /dev/null'
    const r = await run('sh', ['-c', script, 'sh', process.execPath, CLIENT_BIN, url])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /^rc=0$/m, `stderr: ${r.stderr}`)
    assert.doesNotMatch(r.stderr, /EPIPE/)
  })
})
