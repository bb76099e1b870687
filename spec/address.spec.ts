import { test, describe } from 'node:test'
import assert from 'node:assert/strict'
import { type Address, formatAddress, parseAddress } from '../lib/address.js'

describe('parseAddress', () => {
  test('reads tcp://HOST:PORT', () => {
    assert.deepEqual(parseAddress('tcp://example.org:7070'), { kind: 'tcp', host: 'example.org', port: 7070 })
    assert.deepEqual(parseAddress('tcp://127.0.0.1:0'), { kind: 'tcp', host: '127.0.0.1', port: 0 })
  })

  test('reads HOST:PORT without a scheme', () => {
    assert.deepEqual(parseAddress('localhost:65535'), { kind: 'tcp', host: 'localhost', port: 65535 })
    assert.deepEqual(parseAddress('10.0.0.1:80'), { kind: 'tcp', host: '10.0.0.1', port: 80 })
  })

  test('reads a bare port as a port on 127.0.0.1', () => {
    assert.deepEqual(parseAddress('7070'), { kind: 'tcp', host: '127.0.0.1', port: 7070 })
    assert.deepEqual(parseAddress('tcp://8080'), { kind: 'tcp', host: '127.0.0.1', port: 8080 })
  })

  test('reads a bracketed IPv6 host', () => {
    assert.deepEqual(parseAddress('[::1]:7070'), { kind: 'tcp', host: '::1', port: 7070 })
    assert.deepEqual(parseAddress('tcp://[fe80::1]:9'), { kind: 'tcp', host: 'fe80::1', port: 9 })
  })

  test('reads unix:/path and unix:///path as a socket path', () => {
    assert.deepEqual(parseAddress('unix:/tmp/cache.sock'), { kind: 'unix', path: '/tmp/cache.sock' })
    assert.deepEqual(parseAddress('unix:///run/c.sock'), { kind: 'unix', path: '/run/c.sock' })
    assert.deepEqual(parseAddress('unix:rel.sock'), { kind: 'unix', path: 'rel.sock' })
  })

  test('ignores surrounding whitespace', () => {
    assert.deepEqual(parseAddress('  tcp://h:1\n'), { kind: 'tcp', host: 'h', port: 1 })
  })

  test('throws EBADREQ for text that is not an address', () => {
    const bad = ['', '   ', 'tcp://', 'host', 'host:', ':7070', 'tcp://:7070', 'http://h:1', 'h:p', 'a:b:1', '::1:7070', '[::1]', '[::1]:', 'h:1/x', 'unix:', 'h:-1']
    for (const text of bad) assert.throws(() => parseAddress(text), { code: 'EBADREQ' }, JSON.stringify(text))
  })

  test('throws EBADREQ for a port above 65535', () => {
    for (const text of ['65536', 'h:70000', 'tcp://[::1]:99999', '123456789012345678901']) {
      assert.throws(() => parseAddress(text), { code: 'EBADREQ', message: /port out of range/ }, text)
    }
  })
})

describe('formatAddress', () => {
  test('writes tcp:// and brackets IPv6 hosts', () => {
    assert.equal(formatAddress({ kind: 'tcp', host: '127.0.0.1', port: 7070 }), 'tcp://127.0.0.1:7070')
    assert.equal(formatAddress({ kind: 'tcp', host: '::1', port: 80 }), 'tcp://[::1]:80')
    assert.equal(formatAddress({ kind: 'unix', path: '/tmp/s.sock' }), 'unix:/tmp/s.sock')
  })

  test('writes what parseAddress reads back to the same address', () => {
    const all: Address[] = [
      { kind: 'tcp', host: 'example.org', port: 1 },
      { kind: 'tcp', host: '::1', port: 65535 },
      { kind: 'tcp', host: '192.168.1.2', port: 0 },
      { kind: 'unix', path: '/var/run/cacheserv.sock' },
    ]
    for (const a of all) assert.deepEqual(parseAddress(formatAddress(a)), a)
  })
})
