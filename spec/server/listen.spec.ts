/**
 * Binding a net.Server: listenOn resolves once bound and rejects with the
 * bind's error, leaving no listener behind; listenUnix makes a socket file
 * with the mode asked, replaces only a stale socket a crashed server left,
 * and refuses a live socket or any other file with EADDRINUSE.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { listenOn, listenUnix } from '../../lib/server/listen.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

/** A net.Server closed when the test ends. */
function netServer(t: TestContext): net.Server {
  const server = net.createServer((s) => {
    // A probe that hung up at once (listenUnix's liveness check) may reset this end.
    s.on('error', () => {})
    s.end('hi')
  })
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

/** This process's umask, left as it was. */
function umask(): number {
  const mask = process.umask(0o022)
  process.umask(mask)
  return mask
}

/** What a client connecting to `path` reads. */
async function hello(path: string): Promise<string> {
  const socket = net.connect({ path })
  socket.setEncoding('utf8')
  let got = ''
  for await (const chunk of socket) got += chunk
  return got
}

describe('listenOn', () => {
  test('resolves once bound, and leaves no error listener behind', async (t) => {
    const server = netServer(t)
    const listeners = server.listenerCount('error')
    await listenOn(server, { host: '127.0.0.1', port: 0 })
    assert.ok(server.listening)
    assert.equal(typeof (server.address() as net.AddressInfo).port, 'number')
    assert.equal(server.listenerCount('error'), listeners)
  })

  test('rejects with the bind\'s error (EADDRINUSE) instead of emitting it, and leaves no listener behind', async (t) => {
    const taken = netServer(t)
    await listenOn(taken, { host: '127.0.0.1', port: 0 })
    const port = (taken.address() as net.AddressInfo).port
    const server = netServer(t)
    await assert.rejects(listenOn(server, { host: '127.0.0.1', port }), { code: 'EADDRINUSE' })
    assert.equal(server.listening, false)
    assert.equal(server.listenerCount('error'), 0)
    // The same server may bind elsewhere after.
    await listenOn(server, { host: '127.0.0.1', port: 0 })
    assert.ok(server.listening)
  })
})

describe('listenUnix', () => {
  test('makes the socket file with the mode asked, and restores the umask', async (t) => {
    const dir = tempDir(t)
    const mask = umask()
    for (const [name, mode] of [['a.sock', 0o600], ['b.sock', 0o660], ['c.sock', 0o666]] as const) {
      const path = join(dir, name)
      await listenUnix(netServer(t), path, mode)
      assert.equal(statSync(path).mode & 0o777, mode, name)
      assert.equal(await hello(path), 'hi')
    }
    assert.equal(umask(), mask)
  })

  test('the socket file allows no one else from the instant it is bound, whatever mode it ends with', async (t) => {
    const path = join(tempDir(t), 's.sock')
    const server = netServer(t)
    let atBind = -1
    // 'listening' is emitted as soon as the socket is bound, before the mode is set.
    server.once('listening', () => (atBind = statSync(path).mode & 0o777))
    await listenUnix(server, path, 0o666)
    assert.equal(atBind, 0o600)
    assert.equal(statSync(path).mode & 0o777, 0o666)
  })

  test('refuses a live socket with EADDRINUSE, and leaves it serving', async (t) => {
    const path = join(tempDir(t), 's.sock')
    await listenUnix(netServer(t), path, 0o600)
    await assert.rejects(listenUnix(netServer(t), path, 0o600), { code: 'EADDRINUSE', message: `another server is listening on unix:${path}` })
    assert.equal(await hello(path), 'hi')
  })

  test('refuses a file or a directory that is not a socket with EADDRINUSE, and leaves it as it was', async (t) => {
    const dir = tempDir(t)
    writeFile(dir, 'file', 'precious')
    mkdirSync(join(dir, 'dir'))
    for (const name of ['file', 'dir']) {
      const path = join(dir, name)
      await assert.rejects(listenUnix(netServer(t), path, 0o600), { code: 'EADDRINUSE', message: `${path} exists and is not a socket; refusing to replace it` })
    }
    assert.equal(readFileSync(join(dir, 'file'), 'utf8'), 'precious')
    assert.ok(statSync(join(dir, 'dir')).isDirectory())
  })

  test('a bind that fails rejects with its error and restores the umask', async (t) => {
    const mask = umask()
    const path = join(tempDir(t), 'no-such-dir', 's.sock')
    await assert.rejects(listenUnix(netServer(t), path, 0o600), (err: NodeJS.ErrnoException) => typeof err.code === 'string' && err.message.includes(path))
    assert.equal(umask(), mask)
  })
})

describe('a server on a unix socket', () => {
  test('listens on a unix socket, replaces a stale socket file, refuses a live one', async (t) => {
    const { root } = await startServer(t)
    writeFile(root, 'u.bin', 300_000)
    const path = `${root}/s.sock`
    // A crashed server leaves its socket file behind: make one with a process we kill hard.
    const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`])
    t.after(() => void crashed.kill('SIGKILL'))
    await once(crashed.stdout, 'data')
    crashed.kill('SIGKILL')
    await once(crashed, 'exit')
    assert.ok(statSync(path).isSocket(), 'stale socket file left behind')
    const { url } = await startServer(t, { root, listen: `unix:${path}` })
    assert.equal(url, `unix:${path}`)
    const client = await connectTo(t, url)
    assert.equal((await client.readFile('u.bin')).length, 300_000)
    await assert.rejects(startServer(t, { root, listen: `unix:${path}` }), { code: 'EADDRINUSE' })
  })

  test('refuses to replace a regular file with its socket', async (t) => {
    const { root } = await startServer(t)
    writeFile(root, 'not-a-socket', 'precious')
    await assert.rejects(startServer(t, { root, listen: `unix:${root}/not-a-socket` }), { code: 'EADDRINUSE' })
    assert.equal(readFileSync(`${root}/not-a-socket`, 'utf8'), 'precious')
  })

  test('the socket file is 0600 by default, and serves', async (t) => {
    const path = join(tempDir(t), 's.sock')
    const { url, root } = await startServer(t, { listen: `unix:${path}` })
    writeFile(root, 'a.txt', 'hi')
    assert.equal(statSync(path).mode & 0o777, 0o600)
    const c = await connectTo(t, url)
    assert.equal((await c.readFile('a.txt')).toString(), 'hi')
  })

  test('socketMode 0o660 gives a 0660 socket file', async (t) => {
    const path = join(tempDir(t), 's.sock')
    const { url } = await startServer(t, { listen: `unix:${path}`, socketMode: 0o660 })
    assert.equal(statSync(path).mode & 0o777, 0o660)
    const c = await connectTo(t, url)
    assert.deepEqual(await c.ls(), [])
  })
})
