/**
 * cacheserv-pipe: a RAM cache for dataset directories, served over a socket as
 * verified streams. The public API: the server, the client, the stages a user
 * composes around a socket, the codecs under them, and fault injection.
 * Everything else is internal and may change.
 */
export { CacheServer, createServer, DEFAULT_CACHE_SIZE, type ServerOptions, type ServerStats } from './server/server.js'
export type { Connection } from './server/connection.js'
export { Client, connect, type ConnectOptions, type Entry, type Hello, type ReadOptions, type PinResult, type StatResult, type TreeFile } from './client/client.js'
export { ReadStream } from './client/read-stream.js'
export type { ReadInfo, ReadSink } from './client/read-receiver.js'
export { DEFAULT_BLOCK_SIZE, type CacheStats } from './cache/block-cache.js'
export { createRequestParser } from './stages/request-parser.js'
export { createPager } from './stages/pager.js'
export { createFramer } from './stages/framer.js'
export { createDeframer } from './stages/deframer.js'
export { FrameDecoder } from './protocol/decoder.js'
export { encodeFrame, type Frame, type ReceivedFrame } from './protocol/frame.js'
export { encodeHeader, decodeHeader, type Header } from './protocol/header.js'
export { encodeRequest, parseRequestLine } from './protocol/request.js'
export * from './protocol/constants.js'
export { parseAddress, formatAddress, type Address } from './address.js'
export { CacheservError, ErrorCodes, type ErrorCode } from './errors.js'
export { VERSION } from './version.js'
export { corrupt, type CorruptMode, type CorruptOptions, type CorruptStats, type Corrupter } from './stages/corrupt.js'
export type { ClientStats } from './client/client.js'
export type { Deframer, Deframed, StreamLoss } from './stages/deframer.js'
