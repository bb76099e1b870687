/**
 * Metrics: the server's counters in Prometheus text on a registry of its
 * own, read from the server's stats at each scrape, and request latencies
 * observed as they come. Checked on a source made by hand, and through the
 * real /-/metrics endpoint of a server.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { register } from 'prom-client'
import { connect } from '../../lib/client/client.js'
import { Metrics, type MetricsSource, PREFIX } from '../../lib/metrics/metrics.js'
import { noSharedMemory, writeFile } from '../helpers/fixtures.js'
import { shmNative } from '../../lib/cache/shm-native.js'
import { curl, parseHead, startGateway } from '../helpers/http.js'

const MiB = 1024 * 1024

/** Each metric and the field of the stats it shows. */
const COUNTERS: [string, keyof MetricsSource][] = [
  ['cache_hits_total', 'hits'],
  ['cache_misses_total', 'misses'],
  ['cache_hit_bytes_total', 'hitBytes'],
  ['cache_miss_bytes_total', 'missBytes'],
  ['cache_evictions_total', 'evictions'],
  ['disk_reads_total', 'diskReads'],
  ['shared_hits_total', 'sharedHits'],
  ['shared_misses_total', 'sharedMisses'],
  ['shared_errors_total', 'sharedErrors'],
  ['shared_corrupt_total', 'sharedCorrupt'],
  ['shared_read_bytes_total', 'sharedReadBytes'],
  ['shared_written_bytes_total', 'sharedWrittenBytes'],
  ['shared_skipped_total', 'sharedSkipped'],
  ['nacks_total', 'nacks'],
  ['connections_total', 'totalConnections'],
  ['stalled_closed_total', 'stalledClosed'],
]
const GAUGES: [string, keyof MetricsSource][] = [
  ['open_connections', 'connections'],
  ['cache_bytes', 'cacheBytes'],
  ['pinned_bytes', 'pinnedBytes'],
  ['pinned_files', 'pinnedFiles'],
  ['cache_limit_bytes', 'cacheLimit'],
  ['buffered_bytes', 'bufferedBytes'],
  ['buffered_limit_bytes', 'bufferedLimit'],
]

/** Stats with a different value in every numeric field. */
function source(): MetricsSource {
  const s: Record<string, unknown> = { shm: null, bytesServedByInterface: { socket: 1000, http: 2000, shm: 3000 } }
  for (const [i, [, field]] of [...COUNTERS, ...GAUGES].entries()) s[field] = 100 + i
  Object.assign(s, { bytesServed: 3000, locatedBytes: 3000, httpBytesServed: 2000, metaHits: 0, metaMisses: 0, metaBytes: 0, metaDirs: 0 })
  return s as unknown as MetricsSource
}

/** `name{labels} value` lines of a scrape, by series. */
function series(text: string): Map<string, number> {
  return new Map([...text.matchAll(/^(cacheserv_\S+) (\S+)$/gm)].map((m) => [m[1], Number(m[2])]))
}

/** Names the README lists under **Metrics**, with their kind. */
function documented(): { counters: string[]; gauges: string[]; histograms: string[] } {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8')
  const para = /^\*\*Metrics\*\*.*$/m.exec(readme)![0]
  const names = (kind: string) => {
    const part = new RegExp(`${kind} (.*?)(;|\\.$|$)`).exec(para)![1]
    return [...part.matchAll(/`([a-z_]+)/g)].map((m) => m[1])
  }
  return { counters: names('counters'), gauges: names('gauges'), histograms: names('the histogram') }
}

describe('Metrics', () => {
  test('every counter and gauge shows its field of the stats, under the cacheserv_ prefix', async () => {
    const text = (await new Metrics(source).text()).body
    const got = series(text)
    const s = source()
    for (const [name, field] of [...COUNTERS, ...GAUGES]) assert.equal(got.get(PREFIX + name), s[field], name)
    for (const [name] of COUNTERS) assert.match(text, new RegExp(`^# TYPE ${PREFIX}${name} counter$`, 'm'))
    for (const [name] of GAUGES) assert.match(text, new RegExp(`^# TYPE ${PREFIX}${name} gauge$`, 'm'))
    for (const m of text.matchAll(/^# TYPE (\S+) /gm)) assert.ok(m[1].startsWith(PREFIX), m[1])
  })

  test('has every metric the README lists, of the kind it says', async () => {
    const text = (await new Metrics(source).text()).body
    const docs = documented()
    assert.ok(docs.counters.length >= 10 && docs.gauges.length >= 7 && docs.histograms.length === 1, JSON.stringify(docs))
    for (const [kinds, type] of [[docs.counters, 'counter'], [docs.gauges, 'gauge'], [docs.histograms, 'histogram']] as const) {
      for (const name of kinds) assert.match(text, new RegExp(`^# TYPE ${PREFIX}${name} ${type}$`, 'm'), name)
    }
  })

  test('served bytes are one counter with an interface label per interface', async () => {
    const got = series((await new Metrics(source).text()).body)
    assert.equal(got.get('cacheserv_served_bytes_total{interface="socket"}'), 1000)
    assert.equal(got.get('cacheserv_served_bytes_total{interface="http"}'), 2000)
    assert.equal(got.get('cacheserv_served_bytes_total{interface="shm"}'), 3000)
  })

  test('counters show the stats as they are at each scrape, never summed over scrapes', async () => {
    const s = source()
    const metrics = new Metrics(() => s)
    const first = series((await metrics.text()).body)
    const again = series((await metrics.text()).body)
    assert.deepEqual(again, first, 'a second scrape of the same stats')
    s.hits += 5
    s.bytesServedByInterface.shm += 7
    const later = series((await metrics.text()).body)
    assert.equal(later.get('cacheserv_cache_hits_total'), first.get('cacheserv_cache_hits_total')! + 5)
    assert.equal(later.get('cacheserv_served_bytes_total{interface="shm"}'), 3007)
  })

  test('observe records a request\'s duration by interface, method and status', async () => {
    const metrics = new Metrics(source)
    metrics.observe('http', 'GET', 200, 0.003)
    metrics.observe('http', 'GET', 200, 2)
    metrics.observe('http', 'HEAD', 404, 0.0001)
    const got = series((await metrics.text()).body)
    const get200 = 'interface="http",method="GET",status="200"'
    assert.equal(got.get(`cacheserv_request_duration_seconds_count{${get200}}`), 2)
    assert.equal(got.get(`cacheserv_request_duration_seconds_sum{${get200}}`), 2.003)
    assert.equal(got.get(`cacheserv_request_duration_seconds_bucket{le="0.005",${get200}}`), 1)
    assert.equal(got.get(`cacheserv_request_duration_seconds_bucket{le="5",${get200}}`), 2)
    assert.equal(got.get('cacheserv_request_duration_seconds_bucket{le="0.0005",interface="http",method="HEAD",status="404"}'), 1)
  })

  test('each instance has a registry of its own: two live side by side, and nothing goes in the process-wide one', async () => {
    const a = new Metrics(source)
    const b = new Metrics(() => ({ ...source(), hits: 1 }))
    assert.equal(series((await a.text()).body).get('cacheserv_cache_hits_total'), 100)
    assert.equal(series((await b.text()).body).get('cacheserv_cache_hits_total'), 1)
    assert.doesNotMatch(await register.metrics(), /cacheserv_/)
  })

  test('text is Prometheus text exposition, with its content type', async () => {
    const { contentType, body } = await new Metrics(source).text()
    assert.match(contentType, /^text\/plain; version=0\.0\.4/)
    assert.match(body, /^# HELP cacheserv_cache_hits_total /m)
  })
})

describe('/-/metrics of a server', () => {
  test('Prometheus text, every name with the cacheserv_ prefix, _total counters and _bytes gauges', async (t) => {
    const g = await startGateway(t, { cacheSize: 8 * MiB })
    const SIZE = 3 * MiB + 17
    writeFile(g.root, 'big.bin', SIZE)
    assert.equal((await curl(['-f', '-o', '/dev/null', `${g.base}/big.bin`])).code, 0)
    const r = await curl(['-i', `${g.base}/-/metrics`])
    const h = parseHead(r.stdout)
    assert.equal(h.status, 200)
    assert.match(h.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    const text = h.body.toString()
    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1], m[2]])
    assert.ok(names.length >= 10)
    for (const [name, type] of names) {
      assert.match(name, /^cacheserv_/)
      if (type === 'counter') assert.match(name, /_total$/)
    }
    for (const name of ['cacheserv_cache_hits_total', 'cacheserv_cache_misses_total', 'cacheserv_cache_evictions_total', 'cacheserv_disk_reads_total', 'cacheserv_nacks_total', 'cacheserv_cache_bytes', 'cacheserv_cache_limit_bytes']) {
      assert.match(text, new RegExp(`^${name} \\d+`, 'm'), name)
    }
    const served = /^cacheserv_served_bytes_total\{interface="http"\} (\d+)/m.exec(text)
    assert.ok(served && Number(served[1]) >= SIZE)
    assert.match(text, /^cacheserv_request_duration_seconds_bucket\{.*interface="http".*\} \d+/m)
  })

  test('served_bytes_total counts the bytes read over the socket and over HTTP each under its interface', async (t) => {
    const g = await startGateway(t, { shmDir: false })
    const data = writeFile(g.root, 'a.bin', 300_000)
    const other = writeFile(g.root, 'b.bin', 70_000)
    const scrape = async () => series(await (await fetch(`${g.base}/-/metrics`)).text())
    const served = (s: Map<string, number>, iface: string) => s.get(`cacheserv_served_bytes_total{interface="${iface}"}`)!
    const before = await scrape()
    const client = await connect(g.url)
    t.after(() => client.close())
    assert.ok((await client.readFile('a.bin')).equals(data))
    assert.ok(Buffer.from(await (await fetch(`${g.base}/b.bin`)).arrayBuffer()).equals(other))
    const after = await scrape()
    assert.equal(served(after, 'socket') - served(before, 'socket'), data.length)
    assert.equal(served(after, 'http') - served(before, 'http'), other.length)
    assert.equal(served(after, 'shm'), 0)
  })

  test('served_bytes_total{interface="shm"} grows by the bytes a same-host client reads from shared memory, none of them over the socket', { skip: noSharedMemory(shmNative()) }, async (t) => {
    const g = await startGateway(t, { cacheSize: 64 * MiB })
    const files = ['a.bin', 'b.bin', 'c.bin'].map((name, i) => ({ name, data: writeFile(g.root, name, 200_000 + i * 70_001) }))
    const big = writeFile(g.root, 'big.bin', 5 * MiB + 3)
    const scrape = async () => series(await (await fetch(`${g.base}/-/metrics`)).text())
    const shm = (s: Map<string, number>) => s.get('cacheserv_served_bytes_total{interface="shm"}')!
    const socket = (s: Map<string, number>) => s.get('cacheserv_served_bytes_total{interface="socket"}')!
    const client = await connect(g.url)
    t.after(() => client.close())
    assert.equal(client.hello.shm, true, 'the server offers shared memory to this client')
    const before = await scrape()

    // readMany locates a batch of files and reads them from the store itself.
    for await (const { path, data } of client.readMany(files.map((f) => f.name))) assert.ok(data.equals(files.find((f) => f.name === path)!.data), path)
    const afterMany = await scrape()
    const manyBytes = files.reduce((n, f) => n + f.data.length, 0)
    assert.equal(shm(afterMany) - shm(before), manyBytes)

    // readChunks with sharedMemory: a range located and copied out of the store.
    const got: Buffer[] = []
    await client.readChunks('big.bin', (c) => void got.push(Buffer.from(c)), { sharedMemory: true, offset: 1000, length: 4 * MiB })
    assert.ok(Buffer.concat(got).equals(big.subarray(1000, 1000 + 4 * MiB)))
    const afterRange = await scrape()
    assert.equal(shm(afterRange) - shm(afterMany), 4 * MiB)

    assert.equal(socket(afterRange), socket(before), 'no file byte crossed the socket')
    assert.equal(shm(afterRange), g.server.stats().locatedBytes, 'the series is the locatedBytes of stats')
  })
})
