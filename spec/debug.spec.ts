/**
 * createDebug: loggers through the `debug` package when $DEBUG is set, and
 * no-ops that load nothing when it is not. $DEBUG is read at import, so each
 * case runs in a child process.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { run } from './helpers/cli.js'

const DEBUG_MODULE = new URL('../lib/debug.js', import.meta.url).href

/** Logs through two loggers, then reports their `enabled` and whether the debug package was loaded. */
const SCRIPT = `
import { createRequire } from 'node:module'
const { default: createDebug } = await import(${JSON.stringify(DEBUG_MODULE)})
const framer = createDebug('cacheserv:framer')
const pager = createDebug('cacheserv:pager')
framer('frame type %d id %d', 3, 7)
pager('page of %d bytes', 4096)
const loaded = Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('/node_modules/debug/'))
console.log(JSON.stringify({ framer: framer.enabled, pager: pager.enabled, loaded }))
`

async function probe(env: NodeJS.ProcessEnv): Promise<{ report: { framer: boolean; pager: boolean; loaded: boolean }; stderr: string }> {
  const r = await run(process.execPath, ['--input-type=module', '-e', SCRIPT], { env: { DEBUG_COLORS: 'no', ...env } })
  assert.equal(r.code, 0, r.stderr)
  return { report: JSON.parse(r.stdout.toString()), stderr: r.stderr }
}

describe('createDebug', () => {
  test('without $DEBUG: every logger is off, logs nothing, and the debug package is never loaded', async () => {
    for (const DEBUG of [undefined, '']) {
      const { report, stderr } = await probe({ DEBUG })
      assert.deepEqual(report, { framer: false, pager: false, loaded: false }, `DEBUG=${JSON.stringify(DEBUG)}`)
      assert.equal(stderr, '')
    }
  })

  test('with $DEBUG: the namespaces it names log to stderr with their name and formatted arguments, the others stay off', async () => {
    const { report, stderr } = await probe({ DEBUG: 'cacheserv:framer' })
    assert.deepEqual(report, { framer: true, pager: false, loaded: true })
    assert.match(stderr, /cacheserv:framer frame type 3 id 7/)
    assert.doesNotMatch(stderr, /page of/)
  })

  test('a wildcard enables every cacheserv namespace', async () => {
    const { report, stderr } = await probe({ DEBUG: 'cacheserv:*' })
    assert.deepEqual(report, { framer: true, pager: true, loaded: true })
    assert.match(stderr, /cacheserv:pager page of 4096 bytes/)
  })
})
