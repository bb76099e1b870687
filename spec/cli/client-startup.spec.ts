/**
 * The client CLI's start-up budget: importing it must not load commander
 * (~20-30 ms as CommonJS from ESM), debug (without $DEBUG), nor what only
 * some commands or options need. A module hook in a child process records every import.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { run } from '../helpers/cli.js'

const CLIENT = new URL('../../lib/cli/client.js', import.meta.url).href

/** Reports every resolved URL to the main thread (hooks run on their own thread). */
const HOOK = 'let port; export function initialize(d) { port = d.port } export async function resolve(s, c, next) { const r = await next(s, c); port.postMessage(r.url); return r }'

const SCRIPT = `
import { register } from 'node:module'
import { MessageChannel } from 'node:worker_threads'
const { port1, port2 } = new MessageChannel()
const urls = []
port1.on('message', (url) => urls.push(url))
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(HOOK)}), { data: { port: port2 }, transferList: [port2] })
await import(${JSON.stringify(CLIENT)})
await new Promise((resolve) => setTimeout(resolve, 100))
port1.close()
console.log(JSON.stringify(urls))
`

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
