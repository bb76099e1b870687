/**
 * The Python client (clients/python) against real servers: this spec starts
 * the servers and a damaging proxy, writes the fixtures, then runs the Python
 * test suite (clients/python/test_cacheserv_client.py) with their addresses in
 * the environment, and fails with its output when it fails.
 */
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { run, SERVER_BIN } from '../helpers/cli.js'
import { faultyProxy } from '../helpers/faulty-proxy.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const KiB = 1024
const MiB = 1024 * 1024
const PAGE = 256 * KiB
// HELLO is the first ~110 bytes; a damaged HELLO fails connect (EPROTO), which is not what this is about.
const SKIP_HELLO = 512
/** Idle timeout of the servers the reconnect tests pause on, and the token of one of them. */
const IDLE_MS = 300
const IDLE_TOKEN = 'sesame'

// This file runs as dist/spec/python/python-client.spec.js: the repository is three levels up.
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const PYTHON_DIR = join(REPO, 'clients', 'python')
const PYTHON = process.env.PYTHON ?? 'python3'

/** The same sizes as the Node read specs, plus a file for the range cases. */
const FILES: Record<string, number> = {
  'empty.bin': 0,
  'one.bin': 1,
  'page.bin': PAGE,
  'page1.bin': PAGE + 1,
  'block.bin': MiB,
  'random3m.bin': 3 * MiB,
  'odd.bin': 3 * MiB + 17,
  'big.bin': 5 * MiB + 3, // larger than the 2 MiB cache
  'ranges.bin': 2 * MiB + 1000,
}

test('the Python client passes its tests against real servers', { timeout: 300_000 }, async (t) => {
  const version = await run(PYTHON, ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])'], { timeout: 10_000 }).catch(() => null)
  if (!version || version.code !== 0) {
    t.skip(`${PYTHON} is not available`)
    return
  }
  const [major, minor] = version.stdout.toString().trim().split('.').map(Number)
  assert.ok(major > 3 || (major === 3 && minor >= 9), `the Python client needs Python >= 3.9, found ${major}.${minor}`)

  const root = tempDir(t, 'cacheserv-py-')
  for (const [name, size] of Object.entries(FILES)) writeFile(root, name, size)
  for (let i = 0; i < 300; i++) writeFile(root, `small/${String(i).padStart(5, '0')}.bin`, (i * 97) % 5000)
  for (let i = 0; i < 5; i++) writeFile(root, `warmdir/w${i}.bin`, 100_000 + i * 1000)
  // An ImageFolder tree for the dataset example, and a directory with no file in it.
  writeFile(root, 'classes/cat/a.bin', 1000)
  writeFile(root, 'classes/cat/sub/b.bin', 2000)
  writeFile(root, 'classes/dog/c.bin', 3000)
  writeFile(root, 'classes/top.bin', 10)
  mkdirSync(join(root, 'emptydir', 'nothing'), { recursive: true })

  const main = await startServer(t, { root, cacheSize: 2 * MiB })
  const md5 = await startServer(t, { root, checksum: 'md5', cacheSize: 64 * MiB })
  const unix = await startServer(t, { root, listen: `unix:${join(tempDir(t, 'cacheserv-py-sock-'), 's.sock')}` })
  const fragile = await startServer(t, { root, pageSize: 16 * KiB, retries: 3 })
  // Short idle timeouts: the reconnect tests pause longer than them.
  const idle = await startServer(t, { root, idleTimeout: IDLE_MS })
  const idleUnix = await startServer(t, { root, idleTimeout: IDLE_MS, listen: `unix:${join(tempDir(t, 'cacheserv-py-sock-'), 'i.sock')}` })
  const idleToken = await startServer(t, { root, idleTimeout: IDLE_MS, token: IDLE_TOKEN })
  const faulty = await faultyProxy(t, main.url, { rate: 1e-5, mode: 'mixed', seed: 7, skip: SKIP_HELLO })
  const hopeless = await faultyProxy(t, fragile.url, { rate: 0.02, mode: 'flip', seed: 5, skip: SKIP_HELLO })

  const r = await run(PYTHON, ['-B', join(PYTHON_DIR, 'test_cacheserv_client.py')], {
    timeout: 280_000,
    env: {
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONUNBUFFERED: '1',
      CACHESERV_SERVER: main.url,
      CACHESERV_TEST_ROOT: root,
      CACHESERV_TEST_NODE: process.execPath,
      CACHESERV_TEST_SERVER_BIN: SERVER_BIN,
      CACHESERV_TEST_FILES: JSON.stringify(FILES),
      CACHESERV_TEST_SERVER: main.url,
      CACHESERV_TEST_MD5_SERVER: md5.url,
      CACHESERV_TEST_UNIX_SERVER: unix.url,
      CACHESERV_TEST_FAULTY: faulty.url,
      CACHESERV_TEST_HOPELESS: hopeless.url,
      CACHESERV_TEST_IDLE_MS: String(IDLE_MS),
      CACHESERV_TEST_IDLE_SERVER: idle.url,
      CACHESERV_TEST_IDLE_UNIX_SERVER: idleUnix.url,
      CACHESERV_TEST_IDLE_TOKEN_SERVER: idleToken.url,
      CACHESERV_TEST_IDLE_TOKEN: IDLE_TOKEN,
    },
  })
  const output = `${r.stdout.toString()}${r.stderr}`
  for (const line of output.split('\n')) if (line.startsWith('SKIP ') || /^python \S+, \d+ tests/.test(line)) t.diagnostic(line)
  assert.equal(r.signal, null, `the Python tests were killed (${r.signal}):\n${output}`)
  assert.equal(r.code, 0, `the Python tests failed:\n${output}`)
  assert.ok(faulty.stats().faults > 0, 'the damaging proxy did damage something')
  assert.ok(main.server.stats().nacks > 0, 'the server resent what the Python client asked for')
})
