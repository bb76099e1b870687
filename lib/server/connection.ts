/**
 * One connection's pipeline, joined in one place:
 *
 *   bytes ─► request parser ─► (auth gate) ─► source (cache ∪ disk) ─► pager ─► framer ─► bytes
 *
 * joinStages makes the chain one Duplex, so backpressure runs end to end and an
 * error or a hang-up anywhere tears every stage down (fds, timers, jobs).
 */
import createDebug from '../debug.js'
import { type Duplex, finished } from 'node:stream'
import { Socket } from 'node:net'
import type { CommandContext } from '../commands/context.js'
import { error } from '../errors.js'
import type { ChecksumName } from '../protocol/constants.js'
import { AuthGate } from '../stages/auth-gate.js'
import { createFramer } from '../stages/framer.js'
import { LeaseBook } from './lease-book.js'
import { closeGently, FLUSH_MS, LINGER_MS } from './close-gently.js'
import { createPager } from '../stages/pager.js'
import { createRequestParser, type RequestParser } from '../stages/request-parser.js'
import { joinStages } from '../stages/chain.js'
import { CommandSource, type SourceOptions } from '../stages/source.js'
import { watchdog } from './watchdog.js'

const debug = createDebug('cacheserv:connection')

/** The source's options (minus where leases go: the connection's LeaseBook), and the other stages'. */
export interface PipelineOptions extends Omit<SourceOptions, 'onLease'> {
  checksum?: ChecksumName
  maxRequest?: number
  /**
   * When the verdict on an auth judged `ok` may be answered, in ms from now, given the
   * connection's auth deadline (a Date.now() time); null: not before it. Default: at once.
   */
  authSchedule?: (ok: boolean, deadline: number) => number | null
  /** Ms from HELLO within which a connection must authenticate (with `token`); 0: no limit. */
  authTimeout?: number
  /** Ms within which a request line must arrive once begun, and the first request after HELLO (0: no limit). */
  requestTimeout?: number
  /** Close a connection that for this many ms neither sent a complete request nor took any output (0: never). */
  idleTimeout?: number
}

export interface ServerPipeline {
  chain: Duplex
  /** The block leases of the responses on their way out (see LeaseBook). */
  leases: LeaseBook
  parser: RequestParser
  source: CommandSource
  /** Present on a server with a token. */
  gate: AuthGate | null
}

/** The server side of the protocol: one Duplex (request bytes in, frame bytes out), and its stages that matter outside. */
function createServerPipeline(ctx: CommandContext, opts: PipelineOptions, authDeadline = Infinity): ServerPipeline {
  const leases = new LeaseBook()
  const source = new CommandSource(ctx, { ...opts, onLease: (lease) => leases.hold(lease) })
  const parser = createRequestParser({ maxRequest: opts.maxRequest })
  const token = opts.token
  const gate = token === undefined ? null : new AuthGate({ token, schedule: (ok) => (opts.authSchedule ? opts.authSchedule(ok, authDeadline) : 0) })
  // Stopped after the pager's transform, not from inside it (that may run within the source's own push).
  const onOverflow = (id: number, attempt: number) => process.nextTick(() => source.abandon(id, attempt))
  const chain = joinStages(
    ...(gate ? [parser, gate] : [parser]),
    source,
    createPager({
      pageSize: opts.pageSize,
      // The source publishes each resent request's current attempt; the pager drops stale parts.
      attempts: source.attempts,
      onOverflow,
      charge: (bytes) => {
        const lease = ctx.cache.leaseCopy(bytes)
        leases.hold(lease)
        return lease
      },
    }),
    createFramer({ checksum: opts.checksum, onLease: (end, lease) => leases.mark(end, lease) }),
  )
  return { chain, leases, parser, source, gate }
}

export interface Connection {
  readonly id: number
  /** Resolves when the connection is fully torn down. */
  readonly closed: Promise<void>
  /** Refuse new requests (ESHUTDOWN); the running ones go on. */
  refuseNewRequests(): void
  /** Nothing running and nothing waiting to be sent: safe to close without cutting a response. */
  readonly idle: boolean
  /**
   * Holds file data the cache does not (see MemoryBudget) and has written
   * nothing for at least `ms` while output waits: the peer stopped reading.
   */
  stalledHolding(ms: number, now?: number): boolean
  destroy(): void
}

/** Ms of no progress on the socket before a connection may be counted as stalled. */
export const STALL_MS = 1000

let nextId = 1

/** Serve one duplex (a socket, or anything shaped like one) until either side ends. */
export function serveConnection(duplex: Duplex, ctx: CommandContext, opts: PipelineOptions): Connection {
  const id = nextId++
  const authTimeout = opts.token !== undefined ? (opts.authTimeout ?? 0) : 0
  const { chain, leases, parser, source, gate } = createServerPipeline(ctx, { ...opts, backedUp: () => duplex.writableNeedDrain }, authTimeout > 0 ? Date.now() + authTimeout : Infinity)
  debug('connection %d open', id)
  let written = 0
  /** When the socket last finished a write, or the connection began. */
  let progressAt = Date.now()
  let backstop: NodeJS.Timeout | undefined
  const stopWatching = watchdog(
    {
      duplex,
      parser,
      taken: () => written - duplex.writableLength,
      working: () => source.working > 0,
      authenticated: gate ? () => gate.authenticated : undefined,
      expire(code, message, stuck) {
        debug('connection %d: %s', id, message)
        // A peer that does not read would never get the ERROR: nothing to wait for.
        if (stuck) return void duplex.destroy()
        // The ERROR goes out after what is queued; closeGently then takes over (see below), but
        // a peer that reads nothing more may keep the output from ending: bounded here.
        source.fail(error(code, message))
        backstop = setTimeout(() => duplex.destroy(), FLUSH_MS + LINGER_MS)
        backstop.unref()
      },
    },
    { requestTimeout: opts.requestTimeout ?? 0, authTimeout, idleTimeout: opts.idleTimeout ?? 0 },
  )
  // A frame leaves the framer as a header and a payload; written one by one, each 28-byte header
  // is a syscall and (with TCP_NODELAY) a packet of its own. Corking for the rest of the tick
  // turns what the chain produces meanwhile into one writev.
  //
  // Written by hand rather than piped: each write's callback says how far the socket has got,
  // which releases the leases of the frames written (see LeaseBook).
  // A socket copies what it writes into the kernel before the callback; any other duplex may keep
  // the chunks it was given, and a block's slot in shared memory is reused once its lease is
  // released: such a duplex gets copies.
  const copies = ctx.cache.inSharedMemory && !(duplex instanceof Socket)
  chain.on('data', (data: Buffer) => {
    const chunk = copies ? Buffer.from(data) : data
    written += chunk.length
    const end = written
    if (duplex.writableCorked === 0) {
      duplex.cork()
      process.nextTick(() => duplex.uncork())
    }
    const more = duplex.write(chunk, (err) => {
      if (err) return
      progressAt = Date.now()
      leases.written(end)
    })
    if (!more) chain.pause()
  })
  duplex.on('drain', () => chain.resume())
  const closed = new Promise<void>((resolve) => {
    let over = false
    const teardown = (err?: Error) => {
      if (over) return
      over = true
      stopWatching()
      clearTimeout(backstop)
      // A hang-up is teardown, not an error worth more than a debug line.
      debug('connection %d closed%s', id, err ? ` (${(err as NodeJS.ErrnoException).code ?? err.message})` : '')
      // Every stage goes with the chain (see joinStages): a job left running would hold its file open.
      chain.destroy()
      duplex.destroy()
      // Whatever was on its way out is dropped with the chain.
      opts.grants?.close()
      leases.releaseAll()
      resolve()
    }
    // Wired by hand, not with stream.pipeline: that destroys the socket as soon as the chain
    // closes, and the chain closes when its responses end, which a fatal request error does
    // while the peer may still be sending; the socket would close with input unread (a RST,
    // see close-gently.ts). Here the socket is ended, and destroyed by closeGently.
    duplex.pipe(chain)
    duplex.on('error', teardown)
    chain.on('error', teardown)
    // Also reports a duplex that was already closed when handed over.
    finished(duplex, (err) => teardown(err ?? undefined))
    // Normally the chain's output ends after the peer ended its side (pipe() then ends ours); a
    // fatal request error ends it early, and the chain may then close without an 'end'.
    let outputOver = false
    const onOutputOver = () => {
      if (outputOver) return
      outputOver = true
      stopWatching()
      if (!duplex.writableEnded) duplex.end()
      closeGently(duplex)
    }
    chain.once('end', onOutputOver)
    chain.once('close', onOutputOver)
  })
  return {
    id,
    closed,
    refuseNewRequests: () => source.refuseNewRequests(),
    get idle() {
      return source.inFlight === 0 && source.readableLength === 0 && chain.readableLength === 0 && duplex.writableLength === 0
    },
    stalledHolding(ms: number, now = Date.now()) {
      return duplex.writableLength > 0 && now - progressAt >= ms && leases.charged
    },
    destroy: () => duplex.destroy(),
  }
}
