/**
 * The product's server for the throughput rows, as its own process (run with
 * the node flags of the bin's shebang): one CacheServer, so one cache, on
 * loopback TCP port 0 through server.listen(), and on a unix socket through
 * server.handle() on a net.Server of ours (listen() takes one address).
 *
 *   node product-server.js ROOT CACHE_BYTES UNIX_PATH
 *
 * Also serves the HTTP gateway on a loopback port. Prints one JSON line
 * {"tcp", "unix", "http"} when ready; exits on SIGTERM or when
 * its stdin closes (the benchmark went away).
 */
import net from 'node:net'
import { createServer } from '../lib/index.js'

async function main(): Promise<void> {
  const [root, cacheBytes, unixPath] = process.argv.slice(2)
  if (!root || !cacheBytes || !unixPath) throw new Error('usage: product-server ROOT CACHE_BYTES UNIX_PATH')
  const server = await createServer({ root, cacheSize: Number(cacheBytes) })
  const tcp = await server.listen('tcp://127.0.0.1:0')
  const unix = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {})
    server.handle(socket)
  })
  await new Promise<void>((resolve, reject) => {
    unix.once('error', reject)
    unix.listen({ path: unixPath }, resolve)
  })
  const http = await server.listenHttp('127.0.0.1:0')
  process.stdout.write(JSON.stringify({ tcp, unix: `unix:${unixPath}`, http }) + '\n')
  let stopping = false
  const stop = () => {
    if (stopping) return
    stopping = true
    unix.close()
    void server.close().finally(() => process.exit(0))
    setTimeout(() => process.exit(0), 2000).unref()
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
}

main().catch((err: Error) => {
  console.error(`product-server: ${err.message}`)
  process.exit(1)
})
