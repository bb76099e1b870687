/**
 * The real server bin on another "host": a network namespace joined to this
 * one by a veth pair shaped to 1 Gbit/s. A client here reads a file across
 * the link byte for byte, and, its peer not being loopback, is never offered
 * the server's shared memory: the bytes cross the link even when it asks for
 * short-circuit reads.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { test } from 'node:test'
import { shmNative } from '../../lib/cache/shm-native.js'
import { type Client, connect } from '../../lib/client/client.js'
import { SERVER_BIN } from '../helpers/cli.js'
import { noSharedMemory, storeDir, tempDir, writeFile } from '../helpers/fixtures.js'
import { makeLink } from '../helpers/netns.js'
import { assertSameBytes } from '../helpers/suite.js'
import { within } from '../helpers/wait.js'

const MiB = 1024 * 1024
const SIZE = 32 * MiB + 12345

const link = await makeLink({ rate: '1gbit' })
const skip = 'skipped' in link ? link.skipped : false

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
async function stopProcess(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  if (!(await within(exited, graceMs))) {
    child.kill('SIGKILL')
    await within(exited, graceMs)
  }
}

/** The "listening on tcp://IP:PORT" address the bin prints on stdout. */
function listeningOn(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`server did not start within 10 s: ${stderr()}`)), 10_000)
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString()
      const m = /listening on (tcp:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1]!)
      }
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`server exited (${code ?? signal}) before listening: ${stderr()}`))
    })
  })
}

test('a client on another host reads a 32 MiB file exactly, over the socket, never from shared memory', { skip, timeout: 30_000 }, async (t) => {
  if ('skipped' in link) return
  let server: ChildProcess | undefined
  let client: Client | undefined
  // One hook, registered first (hooks run in that order): client, server, link, then the temp dirs.
  t.after(async () => {
    await client?.close()
    if (server) await stopProcess(server)
    await link.remove()
  })
  const root = tempDir(t)
  const data = writeFile(root, 'big.bin', SIZE)
  // A store in shared memory where one can be had, so that HELLO's shm is false for the peer, not for want of a store.
  const sharedMemory = noSharedMemory(shmNative()) === false
  const store = sharedMemory ? ['--shm-dir', storeDir(t)] : ['--no-shm']
  const argv = link.exec([process.execPath, SERVER_BIN, '--root', root, '--host', link.serverIp, '--port', '0', '--insecure-no-auth', '--settle', '0', ...store])
  server = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  let err = ''
  server.stderr!.on('data', (c: Buffer) => (err += c.toString()))
  const url = await listeningOn(server, () => err)
  assert.equal(url.replace(/:\d+$/, ''), `tcp://${link.serverIp}`)

  client = await connect(url)
  assert.equal(client.hello.shm, false, 'HELLO offers shared memory to a peer on another host')

  const got = await client.readFile('big.bin')
  assertSameBytes(got, data, 'readFile across the link')

  // Asked for short-circuit reads, the client still takes every byte from the socket.
  const chunks: Buffer[] = []
  const info = await client.readChunks('big.bin', (c) => void chunks.push(Buffer.from(c)), { sharedMemory: true })
  assert.equal(info.length, SIZE)
  assertSameBytes(Buffer.concat(chunks), data, 'readChunks({ sharedMemory: true }) across the link')
  await assert.rejects(client.request('locate', { paths: ['big.bin'] }), { code: 'EACCES' })

  const stats = await client.stats()
  assert.equal(stats.bytesServed, 2 * SIZE)
  assert.equal(stats.nacks, 0)
  if (sharedMemory) assert.notEqual(stats.shm, null, 'the server has its cache in shared memory')
})
