/** Which connections count as from this host (short-circuit reads), over real sockets of each kind. */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { describe, test, type TestContext } from 'node:test'
import { isLocalPeer } from '../../lib/server/local-peer.js'
import { duplexPair } from '../helpers/duplex-pair.js'
import { tempDir } from '../helpers/fixtures.js'

/** Listen on `at`, connect with `connect`, and return the server's side of the connection. */
async function accepted(t: TestContext, at: net.ListenOptions, connect: (addr: string | net.AddressInfo) => net.Socket): Promise<net.Socket> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(at, resolve))
  const side = once(server, 'connection') as Promise<[net.Socket]>
  const client = connect(server.address()!)
  const [socket] = await side
  t.after(
    () =>
      new Promise<void>((resolve) => {
        client.destroy()
        socket.destroy()
        server.close(() => resolve())
      }),
  )
  return socket
}

const port = (addr: string | net.AddressInfo) => (addr as net.AddressInfo).port

/** An address of this host that is not loopback, or undefined. */
function outerAddress(family: 'IPv4' | 'IPv6'): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && !a.internal && a.family === family && !a.address.startsWith('fe80:'))?.address
}

const ipv6 = Object.values(networkInterfaces()).flat().some((a) => a?.address === '::1')

describe('isLocalPeer', () => {
  test('a duplex in this process is local', () => {
    assert.equal(isLocalPeer(duplexPair()[0]), true)
  })

  test('a unix socket is local', async (t) => {
    const path = join(tempDir(t), 'sock')
    const side = await accepted(t, { path }, () => net.connect({ path }))
    assert.equal(side.remoteAddress, undefined)
    assert.equal(isLocalPeer(side), true)
  })

  test('TCP from anywhere in 127/8 is local', async (t) => {
    for (const localAddress of ['127.0.0.1', '127.0.0.5']) {
      const side = await accepted(t, { host: '127.0.0.1', port: 0 }, (a) => net.connect({ host: '127.0.0.1', port: port(a), localAddress }))
      assert.equal(side.remoteAddress, localAddress)
      assert.equal(isLocalPeer(side), true, localAddress)
    }
  })

  test('TCP over ::1, or from 127.0.0.1 mapped into IPv6, is local', { skip: !ipv6 && 'no IPv6 loopback' }, async (t) => {
    const v6 = await accepted(t, { host: '::1', port: 0 }, (a) => net.connect({ host: '::1', port: port(a) }))
    assert.equal(v6.remoteAddress, '::1')
    assert.equal(isLocalPeer(v6), true)
    const mapped = await accepted(t, { host: '::', port: 0 }, (a) => net.connect({ host: '127.0.0.1', port: port(a) }))
    assert.equal(mapped.remoteAddress, '::ffff:127.0.0.1')
    assert.equal(isLocalPeer(mapped), true)
  })

  const outer4 = outerAddress('IPv4')
  test('TCP from an address of this host that is not loopback is not local', { skip: !outer4 && 'no IPv4 address besides loopback' }, async (t) => {
    const side = await accepted(t, { host: outer4, port: 0 }, (a) => net.connect({ host: outer4, port: port(a), localAddress: outer4 }))
    assert.equal(side.remoteAddress, outer4)
    assert.equal(isLocalPeer(side), false)
  })

  const outer6 = outerAddress('IPv6')
  test('nor is the same over IPv6, or such an IPv4 address mapped into IPv6', { skip: !(outer4 && outer6) && 'no IPv4 and IPv6 address besides loopback' }, async (t) => {
    const v6 = await accepted(t, { host: outer6, port: 0 }, (a) => net.connect({ host: outer6, port: port(a), localAddress: outer6 }))
    assert.equal(v6.remoteAddress, outer6)
    assert.equal(isLocalPeer(v6), false)
    const mapped = await accepted(t, { host: '::', port: 0 }, (a) => net.connect({ host: outer4, port: port(a), localAddress: outer4 }))
    assert.equal(mapped.remoteAddress, `::ffff:${outer4}`)
    assert.equal(isLocalPeer(mapped), false)
  })
})
