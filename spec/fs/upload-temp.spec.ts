/**
 * Temporary files of uploads: never part of the tree a client sees, and
 * those of a server that died are removed when a writable server starts.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { describe, test } from 'node:test'
import { isUploadTemp, uploadTempName } from '../../lib/fs/upload-temp.js'
import { tempDir } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

/** A pid that ran and has exited. */
function deadPid(): number {
  return spawnSync('true').pid!
}

/** A process that runs until the test ends. */
function livePid(t: { after: (fn: () => void) => void }): number {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' })
  t.after(() => void child.kill())
  return child.pid!
}

/** This host's temporary name for an upload by `pid`. */
const tempName = (pid: number) => uploadTempName().replace(/\.\d+\.[0-9a-f]{12}\.cacheserv-tmp$/, `.${pid}.0123456789ab.cacheserv-tmp`)

describe('upload temporary files', () => {
  test('names carry the pid and are recognised; other names are not', () => {
    const name = uploadTempName()
    assert.ok(name.includes(`.${process.pid}.`))
    assert.ok(isUploadTemp(name))
    for (const other of ['a.cacheserv-tmp', '.123.cacheserv-tmp', '.x.0123456789ab.cacheserv-tmp', '.1.0123456789ab.cacheserv-tmp.bak']) assert.ok(!isUploadTemp(other), other)
  })

  test('a writable server removes those of dead servers at start, keeps a live one\'s, and no command shows any', async (t) => {
    const root = tempDir(t)
    mkdirSync(join(root, 'sub'))
    writeFileSync(join(root, 'sub', 'real.bin'), 'real')
    const dead = [join(root, tempName(deadPid())), join(root, 'sub', tempName(deadPid()))]
    const live = join(root, 'sub', tempName(livePid(t)))
    // Another host's server, sharing the root: its pids mean nothing here.
    const otherHost = join(root, `.other-host.${deadPid()}.0123456789ab.cacheserv-tmp`)
    for (const p of [...dead, live, otherHost]) writeFileSync(p, 'half an upload')
    // A symlink to an upload's temporary file does not serve it either.
    symlinkSync(basename(live), join(root, 'sub', 'peek'))

    const { server, url } = await startServer(t, { root, writable: true })
    assert.equal(await server.orphanedUploadsRemoved, 2)
    for (const p of dead) assert.ok(!existsSync(p), `${p} is removed`)
    assert.ok(existsSync(live), 'an upload of a live server is left alone')
    assert.ok(existsSync(otherHost), 'an upload of another host\'s server is left alone')

    const client = await connectTo(t, url)
    assert.deepEqual((await client.ls('sub')).map((e) => e.name), ['real.bin'])
    await assert.rejects(client.readFile(`sub/${basename(live)}`), { code: 'ENOENT' })
    await assert.rejects(client.readFile('sub/peek'), { code: 'ENOENT' })
    const warmed = await client.warm('')
    assert.equal(warmed.totalFiles, 1, 'warm walks only the real file')
  })

  test('a read-only server removes nothing', async (t) => {
    const root = tempDir(t)
    const p = join(root, tempName(deadPid()))
    writeFileSync(p, 'half an upload')
    const { server } = await startServer(t, { root })
    assert.equal(await server.orphanedUploadsRemoved, 0)
    assert.ok(existsSync(p))
  })
})
