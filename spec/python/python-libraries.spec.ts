/**
 * The Python package with the libraries it plugs into (clients/python/test_integrations.py):
 * torch datasets under DataLoader workers, the fsspec filesystem, pandas through
 * cacheserv://, and pip install into a fresh venv with no index. This spec starts
 * the servers and runs those tests in one Python process (torch is slow to import).
 *
 * The interpreter: $PYTHON_LIBS if set, else the first of `python3` on PATH and
 * /usr/bin/python3 that imports torch, fsspec, numpy, pandas and PIL (Debian's
 * python3-torch etc. install for /usr/bin/python3, which may not be the python3
 * first on PATH). Without one the test fails, unless CACHESERV_SKIP_PYTHON_LIBS=1.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { run } from '../helpers/cli.js'
import { tempDir } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'

const IDLE_MS = 300
const REPO = fileURLToPath(new URL('../../../', import.meta.url))
const SCRIPT = join(REPO, 'clients', 'python', 'test_integrations.py')
const LIBS = 'import torch, fsspec, numpy, pandas, PIL'

async function findPython(): Promise<string | null> {
  const candidates = process.env.PYTHON_LIBS ? [process.env.PYTHON_LIBS] : ['python3', '/usr/bin/python3']
  for (const py of candidates) {
    const r = await run(py, ['-c', LIBS], { timeout: 60_000 }).catch(() => null)
    if (r && r.code === 0) return py
  }
  return null
}

test('the Python package works with torch, fsspec, pandas and pip', { timeout: 240_000 }, async (t) => {
  const python = await findPython()
  if (!python) {
    const why = `no Python that can \`${LIBS}\` (apt-get install python3-torch python3-fsspec python3-numpy python3-pandas python3-pil, or set PYTHON_LIBS)`
    if (process.env.CACHESERV_SKIP_PYTHON_LIBS === '1') return t.skip(why)
    assert.fail(why)
  }
  const root = tempDir(t, 'cacheserv-pylibs-')
  const main = await startServer(t, { root })
  const unix = await startServer(t, { root, listen: `unix:${join(tempDir(t, 'cacheserv-pylibs-sock-'), 's.sock')}` })
  const idle = await startServer(t, { root, idleTimeout: IDLE_MS })

  const r = await run(python, ['-B', SCRIPT], {
    timeout: 220_000,
    env: {
      PYTHONDONTWRITEBYTECODE: '1',
      PYTHONUNBUFFERED: '1',
      CACHESERV_TEST_ROOT: root,
      CACHESERV_TEST_SERVER: main.url,
      CACHESERV_TEST_UNIX_SERVER: unix.url,
      CACHESERV_TEST_IDLE_SERVER: idle.url,
      CACHESERV_TEST_IDLE_MS: String(IDLE_MS),
    },
  })
  const output = `${r.stdout.toString()}${r.stderr}`
  for (const line of output.split('\n')) if (/^python \S+, torch/.test(line)) t.diagnostic(`${python}: ${line}`)
  assert.equal(r.signal, null, `the Python tests were killed (${r.signal}):\n${output}`)
  assert.equal(r.code, 0, `the Python tests failed:\n${output}`)
  assert.match(output, /^python \S+, torch .*, \d+ tests$/m)
})
