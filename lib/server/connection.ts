/**
 * One connection's pipeline, joined in one place:
 *
 *   bytes ─► request parser ─► source (cache ∪ disk) ─► pager ─► framer ─► bytes
 *
 * pumpify makes the chain one Duplex, so backpressure runs end to end and an
 * error or a hang-up anywhere tears every stage down (fds, timers, jobs).
 */
import createDebug from '../debug.js'
import pumpify from 'pumpify'
import { Socket } from 'node:net'
import { type Duplex, finished } from 'node:stream'
import type { CommandContext } from '../commands/context.js'
import type { ChecksumName } from '../protocol/constants.js'
import { createFramer } from '../stages/framer.js'
import { closeGently } from './close-gently.js'
import type { Attempts } from '../stages/items.js'
import { createPager } from '../stages/pager.js'
import { createRequestParser } from '../stages/request-parser.js'
import { CommandSource } from '../stages/source.js'

const debug = createDebug('cacheserv:connection')

export interface PipelineOptions {
  pageSize?: number
  checksum?: ChecksumName
  maxRequest?: number
  maxInFlight?: number
  minPageSize?: number
  retries?: number
  heartbeat?: number
  hello: unknown
  onData?: (bytes: number) => void
  onNack?: () => void
  /** The first request must be `auth` with this token. */
  token?: string
  /** Close a connection on which no byte moved either way for this many ms (0: never). */
  idleTimeout?: number
}

/** The server side of the protocol: one Duplex (request bytes in, frame bytes out), and its source. */
export function createServerPipeline(ctx: CommandContext, opts: PipelineOptions): { chain: Duplex; source: CommandSource } {
  // Shared by source and pager: the source publishes each resent request's attempt, the pager drops stale parts.
  const attempts: Attempts = new Map()
  const source = new CommandSource(ctx, {
    maxInFlight: opts.maxInFlight,
    hello: opts.hello,
    onData: opts.onData,
    onNack: opts.onNack,
    pageSize: opts.pageSize,
    minPageSize: opts.minPageSize,
    retries: opts.retries,
    heartbeat: opts.heartbeat,
    attempts,
    token: opts.token,
  })
  const chain = new pumpify(
    createRequestParser({ maxRequest: opts.maxRequest }),
    source,
    createPager({ pageSize: opts.pageSize, attempts }),
    createFramer({ checksum: opts.checksum }),
  ) as unknown as Duplex
  return { chain, source }
}

export interface Connection {
  readonly id: number
  /** Resolves when the connection is fully torn down. */
  readonly closed: Promise<void>
  /** Refuse new requests (ESHUTDOWN); the running ones go on. */
  drain(): void
  /** Nothing running and nothing waiting to be sent: safe to close without cutting a response. */
  readonly idle: boolean
  destroy(): void
}

let nextId = 1

/** Serve one duplex (a socket, or anything shaped like one) until either side ends. */
export function serveConnection(duplex: Duplex, ctx: CommandContext, opts: PipelineOptions): Connection {
  const id = nextId++
  const { chain, source } = createServerPipeline(ctx, opts)
  debug('connection %d open', id)
  // Idle, or a reader frozen with a full socket buffer: nothing has moved for the whole timeout.
  if (opts.idleTimeout && duplex instanceof Socket) {
    duplex.setTimeout(opts.idleTimeout, () => {
      debug('connection %d idle for %d ms: closing', id, opts.idleTimeout)
      duplex.destroy()
    })
  }
  // A frame leaves the framer as a header and a payload; written one by one, each 28-byte header
  // is a syscall and (with TCP_NODELAY) a packet of its own. Corking for the rest of the tick
  // turns what the chain produces meanwhile into one writev.
  chain.prependListener('data', () => {
    if (duplex.writableCorked > 0) return
    duplex.cork()
    process.nextTick(() => duplex.uncork())
  })
  const closed = new Promise<void>((resolve) => {
    let over = false
    const teardown = (err?: Error) => {
      if (over) return
      over = true
      // A hang-up is teardown, not an error worth more than a debug line.
      debug('connection %d closed%s', id, err ? ` (${(err as NodeJS.ErrnoException).code ?? err.message})` : '')
      // Stop the jobs for certain: after the peer ended its side, tearing down the chain does not
      // always reach the middle stages, and a job left running would hold its file open.
      source.destroy()
      chain.destroy()
      duplex.destroy()
      resolve()
    }
    // Wired by hand, not with stream.pipeline: that destroys the socket as soon as the chain
    // closes, and the chain closes when its responses end, which a fatal request error does
    // while the peer may still be sending; the socket would close with input unread (a RST,
    // see close-gently.ts). Here the socket is ended, and destroyed by closeGently.
    duplex.pipe(chain)
    chain.pipe(duplex)
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
      if (!duplex.writableEnded) duplex.end()
      closeGently(duplex)
    }
    chain.once('end', onOutputOver)
    chain.once('close', onOutputOver)
  })
  return {
    id,
    closed,
    drain: () => source.drain(),
    get idle() {
      return source.inFlight === 0 && source.readableLength === 0 && chain.readableLength === 0 && duplex.writableLength === 0
    },
    destroy: () => duplex.destroy(),
  }
}
