/**
 * Where a server keeps its blocks: a store it cannot have in the default
 * place leaves the blocks on the heap with a warning; one in a directory the
 * user named must work, or the server does not start.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { shmNative } from '../../lib/cache/shm-native.js'
import { defaultStoreDir, openStore } from '../../lib/server/open-store.js'
import { noSharedMemory, storeDir, tempDir } from '../helpers/fixtures.js'

const MiB = 1024 * 1024
const TOO_BIG = 2 ** 50

describe('openStore', { skip: noSharedMemory(shmNative()) }, () => {
  test('the default place that cannot hold the cache: the heap, with a warning', () => {
    const { store, warning } = openStore({ cacheSize: TOO_BIG, blockSize: MiB, outside: 4 * MiB, root: '/x' })
    assert.equal(store, null)
    assert.match(warning!, /does not fit the shared memory.*cached blocks stay on the heap/)
  })

  test('a directory the user named that cannot hold it: no start', (t) => {
    const dir = storeDir(t)
    assert.throws(() => openStore({ dir, cacheSize: TOO_BIG, blockSize: MiB, outside: 4 * MiB, root: '/x' }), /does not fit the shared memory/)
    assert.equal(existsSync(dir), false, 'nothing left behind')
  })

  test('false: the heap, without a word; a fitting store opens', (t) => {
    assert.deepEqual(openStore({ dir: false, cacheSize: MiB, blockSize: MiB, outside: MiB, root: '/x' }), { store: null })
    const { store, warning } = openStore({ dir: storeDir(t), cacheSize: 8 * MiB, blockSize: MiB, outside: MiB, root: '/x' })
    t.after(() => store?.close())
    assert.ok(store)
    assert.equal(warning, undefined)
  })

  test('the default directory is the same for the same root, and another for another', () => {
    assert.equal(defaultStoreDir('/data/a'), defaultStoreDir('/data/a'))
    assert.notEqual(defaultStoreDir('/data/a'), defaultStoreDir('/data/b'))
    assert.match(defaultStoreDir('/data/a'), /^\/dev\/shm\/cacheserv-pipe-\d+-[0-9a-f]{16}$/)
  })
})

describe('a library server that ended without close()', { skip: noSharedMemory(shmNative()) }, () => {
  test('leaves its temporary store, which the next server that starts removes although the root still exists', async (t) => {
    const root = tempDir(t)
    const server = fileURLToPath(new URL('../../lib/server/server.js', import.meta.url))
    // A process that makes a server with the default store, says where it is, and is killed.
    const script = `
      import { createServer } from ${JSON.stringify(server)}
      const s = await createServer({ root: ${JSON.stringify(root)}, cacheSize: 8 * 1024 * 1024 })
      console.log(s.stats().shm.dir)
      setInterval(() => {}, 1000)
    `
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    t.after(() => child.kill('SIGKILL'))
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
    assert.ok(existsSync(line), `the store ${line} exists while its server runs`)
    child.kill('SIGKILL')
    await once(child, 'exit')
    assert.ok(existsSync(line), 'killed, it could not remove its store')
    const next = openStore({ cacheSize: 8 * MiB, blockSize: MiB, outside: 4 * MiB, root })
    t.after(() => next.store?.close())
    assert.equal(existsSync(line), false, `${line} was swept`)
  })
})
