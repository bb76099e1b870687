/**
 * The client: one connection, many requests in flight. Requests go out as
 * JSON lines; frames come back through the deframer and are routed by id to
 * each request's handler. Backpressure: when a read's consumer is full, the
 * demux holds the socket (so all requests on this connection wait; use one
 * connection per independent consumer).
 */
import createDebug from 'debug'
import net from 'node:net'
import { pipeline, Writable } from 'node:stream'
import { type Address, DEFAULT_ADDRESS, parseAddress } from '../address.js'
import { CacheservError, error } from '../errors.js'
import { FrameType, MAX_ID, PROTOCOL_VERSION } from '../protocol/constants.js'
import type { ReceivedFrame } from '../protocol/frame.js'
import { encodeRequest } from '../protocol/request.js'
import { createDeframer } from '../stages/deframer.js'
import { errorFromFrame, type FrameHandler, parseJsonPayload } from './handlers.js'
import { ReadStream } from './read-stream.js'
import { ResultRequest } from './result-request.js'

const debug = createDebug('cacheserv:client')

export interface Hello {
  protocol: number
  server: string
  checksum: string
  pageSize: number
}

export interface Entry {
  name: string
  type: 'file' | 'dir' | 'other'
}

export interface StatResult {
  path: string
  type: 'file' | 'dir' | 'other'
  size: number
  mtimeMs: number
  mtime: string
  cachedBytes: number
  cached: boolean
}

export interface ReadOptions {
  /** First byte to read. Default 0. */
  offset?: number
  /** Bytes to read; clipped at the end of the file. Default: to the end. */
  length?: number
  /** Bytes the returned stream buffers before it holds the connection. Default 1 MiB. */
  highWaterMark?: number
}

export interface ConnectOptions {
  /** Give up connecting (and waiting for HELLO) after this many ms. Default 10000. */
  timeout?: number
}

export class Client {
  /** What the server announced when the connection opened. */
  readonly hello: Hello
  #socket: net.Socket
  #handlers = new Map<number, FrameHandler>()
  #nextId = 1
  #closed: Error | null = null
  #done: Promise<void>

  private constructor(socket: net.Socket, hello: Hello, done: Promise<void>) {
    this.#socket = socket
    this.hello = hello
    this.#done = done
  }

  /** Connect to a server and wait for its HELLO. */
  static connect(address: string | Address = process.env.CACHESERV_SERVER || DEFAULT_ADDRESS, opts: ConnectOptions = {}): Promise<Client> {
    const addr = typeof address === 'string' ? parseAddress(address) : address
    const timeout = opts.timeout ?? 10_000
    return new Promise<Client>((resolve, reject) => {
      const socket = addr.kind === 'unix' ? net.connect({ path: addr.path }) : net.connect({ host: addr.host, port: addr.port, noDelay: true })
      let client: Client | null = null
      let handshakeDone = false
      const timer = setTimeout(() => fail(error('ECONNECT', `no answer from ${String(address)} within ${timeout} ms`)), timeout)
      const fail = (err: Error) => {
        if (handshakeDone) return
        handshakeDone = true
        clearTimeout(timer)
        socket.destroy()
        reject(err)
      }
      socket.once('error', (err: NodeJS.ErrnoException) => {
        // A CacheservError here is the deframer's verdict on the bytes (EPROTO), passed through by pipeline.
        if (!handshakeDone) fail(err instanceof CacheservError ? err : error('ECONNECT', `cannot connect to ${String(address)}: ${err.code ?? err.message}`, err))
      })
      const demux = new Writable({
        objectMode: true,
        highWaterMark: 1,
        write: (frame: ReceivedFrame, _enc, cb) => {
          if (!handshakeDone) {
            handshakeDone = true
            clearTimeout(timer)
            try {
              const hello = parseHello(frame)
              client = new Client(socket, hello, done)
              resolve(client)
            } catch (err) {
              socket.destroy()
              reject(err)
            }
            return cb()
          }
          client!.#route(frame, cb)
        },
      })
      const done = new Promise<void>((resolveDone) => {
        pipeline(socket, createDeframer({ passCorrupt: true }), demux, (err) => {
          const e =
            err instanceof CacheservError ? err : error('ECLOSED', `connection closed${err ? ` (${(err as NodeJS.ErrnoException).code ?? err.message})` : ' by the server'}`)
          debug('connection ended: %s', e.message)
          fail(e)
          if (client) client.#abortAll(e)
          resolveDone()
        })
      })
    })
  }

  /** Read a file (or a range of it) as a stream of exactly its bytes. */
  read(path: string, opts: ReadOptions = {}): ReadStream {
    const id = this.#allocId()
    const stream = new ReadStream(
      id,
      (cancelOnServer) => {
        this.#handlers.delete(id)
        if (cancelOnServer && !this.#closed) this.#send(id, 'cancel')
      },
      opts.highWaterMark,
    )
    if (this.#closed) {
      process.nextTick(() => stream.destroy(this.#closed!))
      return stream
    }
    this.#handlers.set(id, stream)
    this.#send(id, 'read', { path, offset: opts.offset, length: opts.length })
    return stream
  }

  /** Read a whole file (or range) into one Buffer. */
  async readFile(path: string, opts: ReadOptions = {}): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const chunk of this.read(path, opts)) chunks.push(chunk as Buffer)
    return Buffer.concat(chunks)
  }

  /** Entries of a directory under the root, sorted by name. */
  async ls(path = ''): Promise<Entry[]> {
    const { entries } = await this.request<{ entries: Entry[] }>('ls', { path })
    return entries
  }

  stat(path: string): Promise<StatResult> {
    return this.request<StatResult>('stat', { path })
  }

  /** Send any command answered by one RESULT frame. */
  request<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed)
    const id = this.#allocId()
    const req = new ResultRequest<T>(() => this.#handlers.delete(id))
    this.#handlers.set(id, req)
    this.#send(id, op, args)
    return req.promise
  }

  /** Requests still waiting for their end. */
  get pending(): number {
    return this.#handlers.size
  }

  /** Close the connection; requests still in flight fail with ECLOSED. */
  async close(): Promise<void> {
    this.#closed ??= error('ECLOSED', 'client closed')
    this.#socket.destroy()
    await this.#done
  }

  #allocId(): number {
    const id = this.#nextId
    this.#nextId = id === MAX_ID ? 1 : id + 1
    return id
  }

  #send(id: number, op: string, args?: Record<string, unknown>): void {
    this.#socket.write(encodeRequest(id, op, args))
  }

  #route(frame: ReceivedFrame, cb: () => void): void {
    if (frame.id === 0) {
      // Connection-level error: nothing on this connection can be trusted to finish.
      const err = frame.type === FrameType.ERROR && frame.intact ? errorFromFrame(frame) : error('EPROTO', `unexpected connection frame type ${frame.type}`)
      this.#abortAll(err)
      this.#socket.destroy()
      return cb()
    }
    const handler = this.#handlers.get(frame.id)
    if (!handler) return cb() // a request we cancelled: its remaining frames are dropped
    if (handler.onFrame(frame, cb)) cb()
  }

  #abortAll(err: Error): void {
    this.#closed ??= err
    const handlers = [...this.#handlers.values()]
    this.#handlers.clear()
    for (const h of handlers) h.onAbort(err)
  }
}

function parseHello(frame: ReceivedFrame): Hello {
  if (frame.type !== FrameType.HELLO || frame.id !== 0 || !frame.intact) {
    throw error('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?')
  }
  const hello = parseJsonPayload<Hello>(frame)
  if (hello.protocol !== PROTOCOL_VERSION) {
    throw error('EPROTO', `server speaks protocol ${hello.protocol}, this client speaks ${PROTOCOL_VERSION}`)
  }
  return hello
}

/** Connect to a cacheserv-pipe server (default: $CACHESERV_SERVER or tcp://127.0.0.1:7070). */
export function connect(address?: string | Address, opts?: ConnectOptions): Promise<Client> {
  return Client.connect(address, opts)
}
