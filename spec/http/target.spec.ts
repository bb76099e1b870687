import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseTarget } from '../../lib/http/target.js'

test('a target is percent-decoded segment by segment as UTF-8', () => {
  assert.deepEqual(parseTarget('/a/%C3%A9t%C3%A9%20x.txt?x=1'), { path: 'a/été x.txt', raw: '/a/%C3%A9t%C3%A9%20x.txt' })
  assert.deepEqual(parseTarget('/'), { path: '', raw: '/' })
  assert.deepEqual(parseTarget('/dir/'), { path: 'dir/', raw: '/dir/' })
  assert.equal(parseTarget('http://host:1/a/b').path, 'a/b')
})

test('encoded dots, NUL and backslashes come through for the jail to refuse', () => {
  assert.equal(parseTarget('/%2e%2e/etc/passwd').path, '../etc/passwd')
  assert.equal(parseTarget('/a%00b').path, 'a\0b')
  assert.equal(parseTarget('/a%5Cb').path, 'a\\b')
})

test('bad percent-encoding, invalid UTF-8, an encoded slash or a non-path target is EBADREQ', () => {
  for (const t of ['/%zz', '/%ff', '/a%2Fb', '*', 'a/b']) {
    assert.throws(() => parseTarget(t), { code: 'EBADREQ' }, t)
  }
})

test('/-/ is the gateway\'s own namespace', () => {
  assert.equal(parseTarget('/-/metrics').special, 'metrics')
  assert.equal(parseTarget('/-/').special, '')
  assert.equal(parseTarget('/a/-/metrics').special, undefined)
})
