/**
 * The shipped client bin is one bundled file (scripts/bundle-client.mjs). esbuild's
 * record of what went into it must show the client side only: no server module, no
 * package, and what only some commands need left as separate files that exist.
 */
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { describe, it } from 'node:test'
import { CLIENT_BIN, run } from '../helpers/cli.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { FAST_CRC32_INSTALLED } from '../helpers/optional.js'
import { startServer } from '../helpers/server.js'

interface Meta {
  inputs: Record<string, unknown>
  outputs: Record<string, { imports: { path: string; kind: string; external?: boolean }[] }>
}

const meta = JSON.parse(readFileSync(`${CLIENT_BIN}.meta.json`, 'utf8')) as Meta
const inputs = Object.keys(meta.inputs)
const imports = Object.values(meta.outputs).flatMap((o) => o.imports)

describe('cacheserv-pipe-client bundle', () => {
  it('holds the client, the protocol and the CLI, and nothing of the server', () => {
    assert.ok(inputs.some((f) => f.endsWith('lib/client/client.js')), inputs.join('\n'))
    assert.ok(inputs.some((f) => f.endsWith('lib/protocol/decoder.js')), inputs.join('\n'))
    for (const f of inputs) {
      assert.ok(!f.includes('node_modules/'), `a package is bundled: ${f}`)
      assert.doesNotMatch(f, /lib\/(server|cache|fs|commands|stages)\//, `server-side module bundled: ${f}`)
      assert.doesNotMatch(f, /lib\/cli\/(server|options|help|format|warm-progress|tar|tar-files)\.js$/, `${f} belongs to other commands`)
    }
  })

  it('leaves every dynamic import as a file beside it, which exists', () => {
    const lazy = imports.filter((i) => i.kind === 'dynamic-import')
    assert.ok(lazy.some((i) => i.path.endsWith('/help.js')), JSON.stringify(imports))
    for (const i of lazy) {
      assert.equal(i.external, true, i.path)
      assert.ok(existsSync(resolve(dirname(CLIENT_BIN), i.path)), `${i.path} is missing`)
    }
  })

  it('requires only Node built-ins at load time', () => {
    for (const i of imports.filter((x) => x.kind === 'require-call' || x.kind === 'import-statement')) {
      assert.match(i.path, /^node:/, `${i.path} would be loaded at start-up`)
    }
  })

  it('loads no file but itself for a small read: no package (debug, sizes, SIMD crc32), no other module of ours', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'small.bin', 110_000)
    // Preloaded into the bin's process: on exit, every file that process loaded with require().
    const hook = join(tempDir(t), 'loaded.cjs')
    writeFile(dirname(hook), 'loaded.cjs', "process.on('exit', () => require('fs').writeSync(2, '\\nLOADED ' + JSON.stringify(Object.keys(require.cache)) + '\\n'))\n")
    const r = await run(process.execPath, ['--require', hook, CLIENT_BIN, '--server', url, 'read', 'small.bin'], { env: { DEBUG: '' } })
    assert.equal(r.code, 0, r.stderr)
    assert.ok(r.stdout.equals(data), 'the read delivered the file')
    const loaded = JSON.parse(/LOADED (.*)/.exec(r.stderr)![1]!) as string[]
    assert.deepEqual(loaded.filter((f) => f !== hook), [CLIENT_BIN])
  })

  it('finds the SIMD crc32 package from where it is installed', { skip: !FAST_CRC32_INSTALLED && '@node-rs/crc32 has no binary here' }, () => {
    // The bundle resolves packages from its own URL (createRequire): that must reach node_modules.
    assert.doesNotThrow(() => createRequire(CLIENT_BIN).resolve('@node-rs/crc32'))
  })
})
