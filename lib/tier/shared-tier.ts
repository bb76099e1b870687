/**
 * The shared tier: blocks kept in Redis (one instance, or a Redis Cluster
 * used as one), so that servers on several hosts reading the same files read
 * each block from disk once between them. A block missing from RAM is looked
 * up here before the disk; a block read from disk is stored here without the
 * reader waiting.
 *
 * Redis failing costs speed, never bytes or availability: every lookup is
 * bounded by a timeout, and any failure, a timeout, or a value that fails its
 * checksum (block-value.ts) reads the disk instead. After errors in a row a
 * breaker leaves Redis alone, probing it in the background.
 */
import type { Cluster, Redis, ReplyError } from 'ioredis'
import createDebug from '../debug.js'
import { crc32 } from '../protocol/crc32.js'
import { sharedBlockKey } from './block-key.js'
import { decodeBlockValue, encodeBlockValue } from './block-value.js'
import { Breaker } from './breaker.js'
import type { RedisNode } from './redis-nodes.js'

const debug = createDebug('cacheserv:shared-tier')

/** Errors in a row before the breaker leaves Redis alone. */
const BREAKER_FAILURES = 5
/** How often a left-alone Redis is tried again. */
const BREAKER_RETRY_MS = 1000
/** Bytes of blocks on their way to Redis; blocks read beyond this are not stored (sharedSkipped). */
const DEFAULT_MAX_PENDING = 16 * 1024 * 1024

export interface SharedTierOptions {
  /** Seed nodes: one is enough to find a cluster. */
  nodes: RedisNode[]
  /** Put before every key, so datasets can share a cluster. */
  prefix: string
  /** Ms a lookup, a store or a probe may take. */
  timeoutMs: number
  /** Put the inode number in the keys (see block-key.ts). Default true. */
  inode?: boolean
  /** Bytes of stores in flight at most. Default 16 MiB: lookups share the connection, and wait behind them (0.13 s at 1 Gbit/s). */
  maxPending?: number
}

export interface SharedStats {
  /** Blocks found in Redis and served from there. */
  sharedHits: number
  /** Lookups that found nothing. */
  sharedMisses: number
  /** Lookups and stores that failed (an error, a timeout), and values that failed their checksum. */
  sharedErrors: number
  /** Of sharedErrors, values found in Redis whose checksum failed (dropped there, read from disk). */
  sharedCorrupt: number
  /** Block bytes read from Redis, and stored there. */
  sharedReadBytes: number
  sharedWrittenBytes: number
  /** Blocks not stored: Redis was left alone, or too many bytes were on their way to it. */
  sharedSkipped: number
  /** Whether Redis is being asked now (false while the breaker is open). */
  sharedUp: boolean
}

/** Where a found block goes: its length, a copy of its bytes in memory the cache may keep (a store slot, or the heap), and how to give that back if it is refused. */
export interface Destination {
  length: number
  place: (bytes: Buffer) => Buffer
  give: (buf: Buffer) => void
}

type Client = Redis | Cluster
interface IORedis {
  Redis: typeof Redis
  Cluster: typeof Cluster
  ReplyError: typeof ReplyError
}

/** ioredis, loaded by the first server with a Redis tier: a server without one does not pay for its modules at start. */
let ioredis: IORedis | null = null

export class SharedTier {
  readonly prefix: string
  readonly #inode: boolean
  readonly #nodes: RedisNode[]
  readonly #timeoutMs: number
  readonly #maxPending: number
  #client: Client | null = null
  #connecting: Promise<boolean> | null = null
  #pending = 0
  #closed = false
  #breaker: Breaker
  #stats: Omit<SharedStats, 'sharedUp'> = { sharedHits: 0, sharedMisses: 0, sharedErrors: 0, sharedCorrupt: 0, sharedReadBytes: 0, sharedWrittenBytes: 0, sharedSkipped: 0 }

  /** Connects in the background: until Redis answers, every block goes to disk. */
  constructor(opts: SharedTierOptions) {
    this.#nodes = opts.nodes
    this.prefix = opts.prefix
    this.#inode = opts.inode ?? true
    this.#timeoutMs = opts.timeoutMs
    this.#maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING
    this.#breaker = new Breaker(
      {
        failures: BREAKER_FAILURES,
        retryMs: BREAKER_RETRY_MS,
        probe: () => this.#probe(),
        onChange: (open) => debug(open ? 'Redis left alone: blocks come from disk' : 'Redis answers again'),
      },
      true,
    )
    this.#connecting = this.#connect()
  }

  /** Resolves once Redis answered (true), or the first attempt to reach it failed (false). */
  get ready(): Promise<boolean> {
    return this.#connecting ?? Promise.resolve(this.#breaker.allows)
  }

  key(name: string, identity: string, blockSize: number, index: number): string {
    return sharedBlockKey(this.prefix, name, identity, blockSize, index, this.#inode)
  }

  /**
   * The block stored under `key`, copied into a buffer from `into` and checked
   * there; null when Redis has none, is left alone, fails, or holds a value
   * that fails its checksum (which is then deleted).
   */
  async fetch(key: string, into: Destination): Promise<Buffer | null> {
    const client = this.#client
    if (!client || !this.#breaker.allows) return null
    let value: Buffer | null
    try {
      value = await this.#bounded(client.getBuffer(key))
    } catch (err) {
      this.#failed('lookup', err)
      return null
    }
    this.#breaker.succeeded()
    if (value === null) {
      this.#stats.sharedMisses++
      return null
    }
    // Anything but a string of the block's length (a server that is not Redis may answer anything) is not a block.
    const found = Buffer.isBuffer(value) ? decodeBlockValue(value, into.length) : null
    if (!found) return this.#corrupt(client, key)
    let buf: Buffer
    try {
      buf = into.place(found.bytes)
    } catch (err) {
      // Not Redis' failure (no memory for the copy): the disk is read, the breaker is left alone.
      debug('no room for a block from Redis: %s', (err as Error).message)
      return null
    }
    if (crc32(buf) !== found.crc) {
      into.give(buf)
      return this.#corrupt(client, key)
    }
    this.#stats.sharedHits++
    this.#stats.sharedReadBytes += buf.length
    return buf
  }

  /** Store a block read from disk, without waiting: the reader never does. */
  store(key: string, block: Uint8Array): void {
    const client = this.#client
    if (!client || !this.#breaker.allows || this.#pending + block.length > this.#maxPending) {
      this.#stats.sharedSkipped++
      return
    }
    const value = encodeBlockValue(block)
    this.#pending += block.length
    this.#bounded(client.set(key, value)).then(
      () => {
        this.#pending -= block.length
        this.#breaker.succeeded()
        this.#stats.sharedWrittenBytes += block.length
      },
      (err) => {
        this.#pending -= block.length
        this.#failed('store', err)
      },
    )
  }

  stats(): SharedStats {
    return { ...this.#stats, sharedUp: this.#client !== null && this.#breaker.allows }
  }

  /** Let stores in flight finish (briefly), then disconnect. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#breaker.stop()
    await this.#connecting?.catch(() => {})
    const client = this.#client
    this.#client = null
    if (!client) return
    await this.#bounded(client.quit()).catch(() => client.disconnect())
  }

  /** A value that is not the block it should be: counted, deleted, and the block read from disk. */
  #corrupt(client: Client, key: string): null {
    this.#stats.sharedErrors++
    this.#stats.sharedCorrupt++
    debug('value under %s failed its check: dropped', key)
    client.del(key).catch(() => {})
    return null
  }

  #failed(what: string, err: unknown): void {
    this.#stats.sharedErrors++
    debug('%s failed: %s', what, (err as Error).message)
    // Redis answered (a full cluster refusing a store, OOM): it is up, and its lookups still work.
    if (ioredis && err instanceof ioredis.ReplyError) this.#breaker.succeeded()
    else this.#breaker.failed()
  }

  /** `p`, or a rejection once the timeout has passed. */
  #bounded<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
    })
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
  }

  /** The breaker's background check: connect if never connected, else PING. */
  async #probe(): Promise<boolean> {
    if (this.#closed) return false
    if (!this.#client) {
      this.#connecting ??= this.#connect()
      return this.#connecting
    }
    const pong = await this.#bounded(this.#client.ping()).catch(() => null)
    return pong === 'PONG'
  }

  /** Find out whether the seeds are a cluster, and connect to it (or to the single instance). */
  async #connect(): Promise<boolean> {
    try {
      const lib = (ioredis ??= await loadIORedis())
      const cluster = await this.#isCluster(lib)
      if (cluster === null || this.#closed) return false
      const client = cluster ? this.#cluster(lib) : this.#single(lib)
      client.on('error', (err: Error) => debug('Redis: %s', err.message))
      try {
        await this.#bounded(new Promise<void>((resolve, reject) => {
          client.once('ready', () => resolve())
          client.once('end', () => reject(new Error('connection ended')))
        }))
      } catch (err) {
        client.disconnect()
        throw err
      }
      if (this.#closed) {
        client.disconnect()
        return false
      }
      this.#client = client
      debug('connected to %s Redis at %s', cluster ? 'a cluster of' : 'one', this.#nodes.map((n) => `${n.host}:${n.port}`).join(','))
      this.#breaker.reset()
      return true
    } catch (err) {
      debug('cannot reach Redis: %s', (err as Error).message)
      return false
    } finally {
      this.#connecting = null
    }
  }

  /** Ask the seeds in turn whether cluster mode is on; null when none answers. */
  async #isCluster(lib: IORedis): Promise<boolean | null> {
    for (const node of this.#nodes) {
      const probe = new lib.Redis({ ...node, lazyConnect: true, enableOfflineQueue: false, connectTimeout: this.#timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null })
      probe.on('error', () => {})
      try {
        await this.#bounded(probe.connect())
        const info = await this.#bounded(probe.info('cluster'))
        return /^cluster_enabled:1/m.test(info)
      } catch (err) {
        debug('seed %s:%d: %s', node.host, node.port, (err as Error).message)
      } finally {
        probe.disconnect()
      }
    }
    return null
  }

  #cluster(lib: IORedis): Cluster {
    const [{ username, password }] = this.#nodes
    return new lib.Cluster(
      this.#nodes.map(({ host, port }) => ({ host, port })),
      {
        // A command for a node not connected fails at once (to the disk), never queues.
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        scaleReads: 'master',
        slotsRefreshTimeout: this.#timeoutMs,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        redisOptions: { username, password, connectTimeout: this.#timeoutMs, commandTimeout: this.#timeoutMs, maxRetriesPerRequest: 0 },
      },
    )
  }

  #single(lib: IORedis): Redis {
    return new lib.Redis({
      ...this.#nodes[0],
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      connectTimeout: this.#timeoutMs,
      commandTimeout: this.#timeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: (times) => Math.min(100 * times, 2000),
    })
  }
}

async function loadIORedis(): Promise<IORedis> {
  const { Redis, Cluster, ReplyError } = await import('ioredis')
  return { Redis, Cluster, ReplyError }
}
