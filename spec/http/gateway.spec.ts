/** The HTTP gateway under curl: files, ranges, validators, directory pages, errors and refusals. */
import assert from 'node:assert/strict'
import { utimesSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { curl, type Gateway, parseHead, startGateway } from '../helpers/http.js'
import { assertSameBytes, suiteScope } from '../helpers/suite.js'
import { poll } from '../helpers/wait.js'

const MiB = 1024 * 1024
const SIZE = 3 * MiB + 17

describe('HTTP gateway with curl', () => {
  const scope = suiteScope()
  let g: Gateway
  let data: Buffer
  const url = (p: string) => `${g.base}/${p}`
  const head = async (args: string[]) => {
    const r = await curl(['-i', ...args])
    assert.equal(r.code, 0, r.stderr)
    return parseHead(r.stdout)
  }

  test('setup', async () => {
    g = await startGateway(scope, { cacheSize: 8 * MiB })
    data = writeFile(g.root, 'big.bin', SIZE)
    writeFile(g.root, 'empty.bin', 0)
    writeFile(g.root, 'sub/été x.txt', 'unicode\n')
    writeFile(g.root, 'sub/deeper/a.txt', 'a\n')
  })

  test('GET serves the file byte-exact, never compressed, and HEAD gives its size and validators', async () => {
    const r = await curl(['--compressed', url('big.bin')])
    assert.equal(r.code, 0, r.stderr)
    assertSameBytes(r.stdout, data)
    const h = await head(['-I', url('big.bin')])
    assert.equal(h.status, 200)
    assert.equal(h.headers['content-length'], String(SIZE))
    assert.equal(h.headers['accept-ranges'], 'bytes')
    assert.match(h.headers.etag, /^"[\w-]+"$/)
    assert.ok(!Number.isNaN(Date.parse(h.headers['last-modified'])))
    assert.equal(h.headers['content-encoding'], undefined)
    assert.equal(h.body.length, 0)
  })

  test('an empty file is 200 with no body', async () => {
    const h = await head([url('empty.bin')])
    assert.equal(h.status, 200)
    assert.equal(h.headers['content-length'], '0')
    assert.equal(h.body.length, 0)
  })

  test('ranges a-b, a- and -n are 206 with Content-Range, across block boundaries', async () => {
    const cases: [string, number, number][] = [
      ['0-0', 0, 1],
      [`${MiB - 5}-${MiB + 4}`, MiB - 5, MiB + 5],
      [`${2 * MiB}-`, 2 * MiB, SIZE],
      ['-100', SIZE - 100, SIZE],
      [`100-${SIZE * 2}`, 100, SIZE],
    ]
    for (const [spec, from, to] of cases) {
      const h = await head(['-H', `Range: bytes=${spec}`, url('big.bin')])
      assert.equal(h.status, 206, spec)
      assert.equal(h.headers['content-range'], `bytes ${from}-${to - 1}/${SIZE}`, spec)
      assert.equal(h.headers['content-length'], String(to - from), spec)
      assertSameBytes(h.body, data.subarray(from, to), spec)
    }
  })

  test('a range past the end is 416 with Content-Range bytes */size and the code', async () => {
    const h = await head(['-H', `Range: bytes=${SIZE}-`, url('big.bin')])
    assert.equal(h.status, 416)
    assert.equal(h.headers['content-range'], `bytes */${SIZE}`)
    assert.equal(h.headers['x-cacheserv-error'], 'ERANGE')
  })

  test('several ranges are answered with the whole file', async () => {
    const h = await head(['-H', 'Range: bytes=0-1,5-9', url('big.bin')])
    assert.equal(h.status, 200)
    assert.equal(h.body.length, SIZE)
  })

  test('If-None-Match with the ETag is 304; If-Range with it keeps the range, a stale one gets the whole file', async () => {
    const { headers } = await head(['-I', url('big.bin')])
    const notModified = await head(['-H', `If-None-Match: ${headers.etag}`, url('big.bin')])
    assert.equal(notModified.status, 304)
    assert.equal(notModified.body.length, 0)
    assert.equal(notModified.headers.etag, headers.etag)
    const sinceThen = await head(['-H', `If-Modified-Since: ${headers['last-modified']}`, url('big.bin')])
    assert.equal(sinceThen.status, 304)
    const same = await head(['-H', 'Range: bytes=10-19', '-H', `If-Range: ${headers.etag}`, url('big.bin')])
    assert.equal(same.status, 206)
    assertSameBytes(same.body, data.subarray(10, 20))
    const stale = await head(['-H', 'Range: bytes=10-19', '-H', 'If-Range: "stale"', url('big.bin')])
    assert.equal(stale.status, 200)
    assert.equal(stale.body.length, SIZE)
  })

  test('a rewritten file gets a new ETag and its new bytes; the old ETag no longer gives 304', async () => {
    const first = writeFile(g.root, 'changing.bin', 1000)
    const a = await head([url('changing.bin')])
    assertSameBytes(a.body, first)
    const second = writeFile(g.root, 'changing.bin', 1000)
    const b = await head(['-H', `If-None-Match: ${a.headers.etag}`, url('changing.bin')])
    assert.equal(b.status, 200)
    assert.notEqual(b.headers.etag, a.headers.etag)
    assertSameBytes(b.body, second)
    const mtime = new Date(Date.parse(a.headers['last-modified']))
    utimesSync(join(g.root, 'changing.bin'), mtime, mtime)
    const c = await head(['-H', `If-None-Match: ${b.headers.etag}`, url('changing.bin')])
    assert.equal(c.status, 200, 'setting the mtime back changes the ETag too')
  })

  test('percent-encoded UTF-8 names are served', async () => {
    const r = await curl([url('sub/%C3%A9t%C3%A9%20x.txt')])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout.toString(), 'unicode\n')
  })

  test('escapes are refused with 403 or 400 and the code: .., encoded .., NUL, backslash, encoded slash, bad UTF-8', async () => {
    const cases: [string, number, string][] = [
      ['../etc/passwd', 403, 'EACCES'],
      ['sub/../../etc/passwd', 403, 'EACCES'],
      ['%2e%2e/etc/passwd', 403, 'EACCES'],
      ['sub/%2E%2E/%2E%2E/etc/passwd', 403, 'EACCES'],
      ['big.bin%00.txt', 403, 'EACCES'],
      ['sub%5C..%5C..%5Cetc', 403, 'EACCES'],
      ['..%2Fetc%2Fpasswd', 400, 'EBADREQ'],
      ['%ff', 400, 'EBADREQ'],
    ]
    for (const [path, status, code] of cases) {
      const h = await head(['--path-as-is', url(path)])
      assert.equal(h.status, status, path)
      assert.equal(h.headers['x-cacheserv-error'], code, path)
      assert.match(h.body.toString(), new RegExp(`^${code}: `), path)
    }
  })

  test('a missing file is 404 ENOENT; other methods are 405', async () => {
    const h = await head([url('nope.bin')])
    assert.equal(h.status, 404)
    assert.equal(h.headers['x-cacheserv-error'], 'ENOENT')
    assert.match(h.body.toString(), /^ENOENT: /)
    const post = await head(['-X', 'POST', '-d', 'x', url('big.bin')])
    assert.equal(post.status, 405)
    assert.equal(post.headers.allow, 'GET, HEAD')
  })

  test('a directory redirects to its URL with a slash, whose page links entries relatively, directories ending in /', async () => {
    const r = await head(['-L', url('sub')])
    assert.equal(r.status, 200)
    assert.match(r.headers['content-type'], /^text\/html/)
    const links = [...r.body.toString().matchAll(/<a href="([^"]+)"/g)].map((m) => m[1])
    assert.deepEqual(links, ['../', 'deeper/', '%C3%A9t%C3%A9%20x.txt'])
    const root = await head([`${g.base}/`])
    assert.ok(root.body.toString().includes('<a href="sub/">'))
    assert.ok(!root.body.toString().includes('../'), 'no link above the root')
  })

  test('a directory as JSON with Accept: application/json', async () => {
    const r = await head(['-H', 'Accept: application/json', url('sub/')])
    assert.match(r.headers['content-type'], /^application\/json/)
    assert.deepEqual(JSON.parse(r.body.toString()), { entries: [{ name: 'deeper', type: 'dir' }, { name: 'été x.txt', type: 'file', size: 8 }] })
  })

  test('keep-alive: several requests on one connection', async () => {
    const before = g.server.stats().totalConnections
    const r = await curl(['-v', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', url('big.bin'), url('sub/'), url('empty.bin')])
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stderr, /Re-using existing connection/i)
    assert.equal(g.server.stats().totalConnections - before, 1)
  })

  test('/-/stats is the stats JSON, counting the bytes served over HTTP', async () => {
    const r = await curl([`${g.base}/-/stats`])
    const stats = JSON.parse(r.stdout.toString())
    assert.ok(stats.httpBytesServed >= SIZE)
    assert.equal(typeof stats.cacheLimit, 'number')
  })

  test('/-/healthy answers ok', async () => {
    const r = await curl(['-f', `${g.base}/-/healthy`])
    assert.equal(r.stdout.toString(), 'ok\n')
  })
})

describe('HTTP gateway with a token', () => {
  test('requests need Authorization: Bearer TOKEN; /-/healthy does not', async (t) => {
    const token = 'a-token-long-enough-1234'
    const g = await startGateway(t, { token, authBackoff: 0 })
    writeFile(g.root, 'f.txt', 'secret\n')
    const none = parseHead((await curl(['-i', `${g.base}/f.txt`])).stdout)
    assert.equal(none.status, 401)
    assert.equal(none.headers['x-cacheserv-error'], 'EAUTH')
    assert.match(none.headers['www-authenticate'], /^Bearer/)
    const wrong = parseHead((await curl(['-i', '-H', 'Authorization: Bearer nope', `${g.base}/f.txt`])).stdout)
    assert.equal(wrong.status, 401)
    const metrics = parseHead((await curl(['-i', `${g.base}/-/metrics`])).stdout)
    assert.equal(metrics.status, 401)
    const right = await curl(['-f', '-H', `Authorization: Bearer ${token}`, `${g.base}/f.txt`])
    assert.equal(right.stdout.toString(), 'secret\n')
    const healthy = await curl(['-f', `${g.base}/-/healthy`])
    assert.equal(healthy.code, 0)
  })
})

describe('HTTP gateway limits', () => {
  test('connections beyond --max-connections get 503 EBUSY with Retry-After', async (t) => {
    const g = await startGateway(t, { maxConnections: 1 })
    writeFile(g.root, 'f.txt', 'x')
    const first = connect(Number(new URL(g.base).port), '127.0.0.1')
    t.after(() => first.destroy())
    await new Promise((resolve) => first.once('connect', resolve))
    assert.ok(await poll(() => g.server.stats().connections === 1))
    const h = parseHead((await curl(['-i', `${g.base}/f.txt`])).stdout)
    assert.equal(h.status, 503)
    assert.equal(h.headers['x-cacheserv-error'], 'EBUSY')
    assert.equal(h.headers['retry-after'], '1')
  })
})
