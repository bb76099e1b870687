/**
 * The bare Node server of the "Node ceiling" pair (run as its own process,
 * like the product's server): it holds the same files in RAM as Buffers and
 * answers each 4-byte big-endian file index with a 4-byte length and the
 * bytes, written straight from the Buffer. No framing, no checksums, no
 * cache: what plain Node sockets can do on this machine.
 *
 *   node bare-server.js MANIFEST UNIX_PATH
 *
 * Prints one JSON line {"port", "unix", "bytes"} when ready; exits on
 * SIGTERM or when its stdin closes (the benchmark went away).
 */
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { BIG_INDEX } from './bare.js'
import type { FileInfo } from './data.js'

async function main(): Promise<void> {
  const [manifestPath, unixPath] = process.argv.slice(2)
  if (!manifestPath || !unixPath) throw new Error('usage: bare-server MANIFEST UNIX_PATH')
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { root: string; big: FileInfo; small: FileInfo[] }
  const big = readFileSync(join(manifest.root, manifest.big.path))
  const small = manifest.small.map((f) => readFileSync(join(manifest.root, f.path)))
  const bytes = big.length + small.reduce((n, b) => n + b.length, 0)

  const serve = (socket: net.Socket) => {
    socket.on('error', () => {})
    let pending: Buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk
      while (pending.length >= 4) {
        const index = pending.readUInt32BE(0)
        pending = pending.subarray(4)
        const body = index === BIG_INDEX ? big : small[index]
        if (!body) {
          socket.destroy()
          return
        }
        const head = Buffer.allocUnsafe(4)
        head.writeUInt32BE(body.length)
        socket.cork()
        socket.write(head)
        socket.write(body)
        socket.uncork()
      }
    })
  }
  const tcp = net.createServer({ noDelay: true }, serve)
  const unix = net.createServer(serve)
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject)
    tcp.listen({ host: '127.0.0.1', port: 0 }, resolve)
  })
  await new Promise<void>((resolve, reject) => {
    unix.once('error', reject)
    unix.listen({ path: unixPath }, resolve)
  })
  const port = (tcp.address() as net.AddressInfo).port
  process.stdout.write(JSON.stringify({ port, unix: unixPath, bytes }) + '\n')
  const stop = () => process.exit(0)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('end', stop)
  process.stdin.on('close', stop)
  process.stdin.resume()
}

main().catch((err: Error) => {
  console.error(`bare-server: ${err.message}`)
  process.exit(1)
})
