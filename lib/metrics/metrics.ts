/**
 * The server's counters in Prometheus text exposition, made with prom-client
 * on a registry of its own (nothing process-wide). Counters and gauges are
 * read from the server's stats when scraped, so the hot paths keep their
 * plain integer counters; only request latencies are observed as they come.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { ServerStats } from '../server/server.js'

/** Every name starts with this. */
export const PREFIX = 'cacheserv_'

/** What the metrics read at each scrape: the server's stats, and its bytes sent by interface. */
export type MetricsSource = Omit<ServerStats, 'policy' | 'entries' | 'uptime' | 'sharedUp'> & {
  /** Bytes of file data sent, by interface. */
  bytesServedByInterface: Record<string, number>
}

export class Metrics {
  readonly registry = new Registry()
  #latency: Histogram<'interface' | 'method' | 'status'>

  constructor(read: () => MetricsSource) {
    const r = this.registry
    const counter = (name: string, help: string, value: (s: MetricsSource) => number) =>
      new Counter({ name: PREFIX + name, help, registers: [r], collect() {
        this.reset()
        this.inc(value(read()))
      } })
    const gauge = (name: string, help: string, value: (s: MetricsSource) => number) =>
      new Gauge({ name: PREFIX + name, help, registers: [r], collect() {
        this.set(value(read()))
      } })
    counter('cache_hits_total', 'Block uses served from the cache.', (s) => s.hits)
    counter('cache_misses_total', 'Block uses that needed the disk.', (s) => s.misses)
    counter('cache_hit_bytes_total', 'Bytes served from cached blocks.', (s) => s.hitBytes)
    counter('cache_miss_bytes_total', 'Bytes served from blocks read from disk.', (s) => s.missBytes)
    counter('cache_evictions_total', 'Blocks evicted from the cache.', (s) => s.evictions)
    counter('disk_reads_total', 'Block reads from disk.', (s) => s.diskReads)
    counter('shared_hits_total', 'Blocks found in the shared tier (Redis) instead of read from disk.', (s) => s.sharedHits)
    counter('shared_misses_total', 'Shared-tier lookups that found nothing.', (s) => s.sharedMisses)
    counter('shared_errors_total', 'Shared-tier lookups and stores that failed or timed out, and values that failed their checksum.', (s) => s.sharedErrors)
    counter('shared_corrupt_total', 'Shared-tier values that failed their checksum (dropped, read from disk).', (s) => s.sharedCorrupt)
    counter('shared_read_bytes_total', 'Block bytes read from the shared tier.', (s) => s.sharedReadBytes)
    counter('shared_written_bytes_total', 'Block bytes stored in the shared tier.', (s) => s.sharedWrittenBytes)
    counter('shared_skipped_total', 'Blocks read from disk but not stored in the shared tier (Redis down, or too much on its way).', (s) => s.sharedSkipped)
    counter('nacks_total', 'NACKs received, each answered by a resend.', (s) => s.nacks)
    counter('connections_total', 'Connections accepted since start, socket and HTTP.', (s) => s.totalConnections)
    counter('stalled_closed_total', 'Connections closed for holding memory while not reading.', (s) => s.stalledClosed)
    new Counter({ name: PREFIX + 'served_bytes_total', help: 'Bytes of file data sent, by interface.', labelNames: ['interface'], registers: [r], collect() {
      this.reset()
      for (const [iface, n] of Object.entries(read().bytesServedByInterface)) this.inc({ interface: iface }, n)
    } })
    gauge('open_connections', 'Connections open now, socket and HTTP.', (s) => s.connections)
    gauge('cache_bytes', 'Bytes of blocks in the cache.', (s) => s.cacheBytes)
    gauge('pinned_bytes', 'Bytes of pinned files kept in the cache.', (s) => s.pinnedBytes)
    gauge('pinned_files', 'Files pinned in the cache.', (s) => s.pinnedFiles)
    gauge('cache_limit_bytes', 'The cache\'s byte budget.', (s) => s.cacheLimit)
    gauge('buffered_bytes', 'File data held outside the cache for responses on their way out.', (s) => s.bufferedBytes)
    gauge('buffered_limit_bytes', 'Limit of the file data held outside the cache.', (s) => s.bufferedLimit)
    this.#latency = new Histogram({
      name: PREFIX + 'request_duration_seconds',
      help: 'Time from a request to the end of its response.',
      labelNames: ['interface', 'method', 'status'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [r],
    })
  }

  observe(iface: string, method: string, status: number, seconds: number): void {
    this.#latency.observe({ interface: iface, method, status: String(status) }, seconds)
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
