/**
 * End-to-end tests of the cache commands of `cacheserv-pipe-client` (stats,
 * warm, evict, write) and of `cacheserv-pipe --writable / --warm`: real
 * server and client processes, real files, loopback port 0 only.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { before, describe, it } from 'node:test'
import { POLICIES } from '../../lib/cache/policy.js'
import { CLIENT_BIN, run, type RunResult, runClient, type ServerProcess, startServerProcess } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { suiteScope } from '../helpers/suite.js'
import { STATS_NUMBERS } from '../helpers/stats.js'

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

const MiB = 1024 * 1024

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

  it('the server says it is writable in its first line', () => {
    assert.match(server.line, /writable/)
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

describe('a server process started with --warm and a small cache', () => {
  const scope = suiteScope()
  let server: ServerProcess
  let root: string
  let subBytes: number

  before(async () => {
    root = tempDir(scope)
    subBytes = 0
    for (let i = 0; i < 3; i++) subBytes += writeFile(root, `sub/${i}.bin`, 500_000).length
    writeFile(root, 'cold.bin', 100_000)
    server = await startServerProcess(scope, ['--root', root, '--port', '0', '--cache-size', '4MiB', '--warm', 'sub'])
  })

  it('has the tree cached shortly after start, and says so on stderr', async () => {
    let cacheBytes: unknown = -1
    const until = Date.now() + 5000
    while (Date.now() < until) {
      cacheBytes = (await statsJson(server.url)).cacheBytes
      if (cacheBytes === subBytes && /warmed/.test(server.stderr())) break
      await sleep(50)
    }
    assert.equal(cacheBytes, subBytes)
    assert.equal((await statsJson(server.url)).cacheLimit, 4 * MiB)
    assert.match(server.stderr(), /^cacheserv-pipe: warmed 3 files/m)
  })

  it('write to a server not started writable exits 1 with EROFS and writes nothing', async () => {
    const r = await runClientWithStdin(server.url, ['write', 'sub/x.bin'], randomBytes(10_000))
    assert.equal(r.code, 1)
    assert.match(r.stderr, /EROFS:/)
    assert.equal(existsSync(join(root, 'sub/x.bin')), false)
  })
})
