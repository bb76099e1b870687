/**
 * The bare Node client of the "Node ceiling" pair (see bare-server.ts): send
 * a 4-byte file index, read a 4-byte length and that many bytes. For the big
 * file it counts 'data' bytes through a Toucher; for small files each
 * response is assembled into one Buffer (as readMany hands out) and checked.
 */
import { once } from 'node:events'
import net from 'node:net'
import type { FileInfo } from './data.js'
import { BenchError, now, Toucher, xorPages } from './util.js'

/** The index that asks for the big file. */
export const BIG_INDEX = 0xffffffff

export type BareAddress = { kind: 'tcp'; port: number } | { kind: 'unix'; path: string }

const EMPTY: Buffer = Buffer.alloc(0)

async function connectBare(addr: BareAddress): Promise<net.Socket> {
  const socket = addr.kind === 'tcp' ? net.connect({ host: '127.0.0.1', port: addr.port, noDelay: true }) : net.connect({ path: addr.path })
  await once(socket, 'connect')
  return socket
}

function request(socket: net.Socket, index: number): void {
  const req = Buffer.allocUnsafe(4)
  req.writeUInt32BE(index)
  socket.write(req)
}

/** Read the big file over one fresh connection; ms counts from the request to the last byte. */
export async function bareBig(addr: BareAddress): Promise<{ ms: number; read: Toucher }> {
  const socket = await connectBare(addr)
  try {
    return await new Promise((resolve, reject) => {
      const read = new Toucher()
      let head = EMPTY
      let length = -1
      let t0 = 0
      socket.on('data', (chunk: Buffer) => {
        if (length < 0) {
          head = head.length ? Buffer.concat([head, chunk]) : chunk
          if (head.length < 4) return
          length = head.readUInt32BE(0)
          chunk = head.subarray(4)
        }
        read.touch(chunk)
        if (read.bytes >= length) resolve({ ms: now() - t0, read })
      })
      socket.once('error', reject)
      socket.once('close', () => reject(new BenchError(`bare server closed the connection after ${read.bytes} bytes`)))
      t0 = now()
      request(socket, BIG_INDEX)
    })
  } finally {
    socket.destroy()
  }
}

/**
 * Read `files`, which are the server's list from index `first` on, over
 * `conns` fresh connections, one request at a time on each; ms counts from
 * the first request to the last byte. Every file's length and page xor is
 * checked.
 */
export async function bareMany(addr: BareAddress, files: readonly FileInfo[], first: number, conns: number): Promise<{ ms: number; bytes: number }> {
  const sockets = await Promise.all(Array.from({ length: conns }, () => connectBare(addr)))
  let next = 0
  let bytes = 0
  const t0 = now()
  try {
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            let index = -1
            let need = -1
            let head = EMPTY
            let chunks: Buffer[] = []
            let got = 0
            const ask = () => {
              if (next >= files.length) return resolve()
              index = next++
              need = -1
              chunks = []
              got = 0
              request(socket, first + index)
            }
            socket.on('data', (chunk: Buffer) => {
              if (need < 0) {
                head = head.length ? Buffer.concat([head, chunk]) : chunk
                if (head.length < 4) return
                need = head.readUInt32BE(0)
                chunk = head.subarray(4)
                head = EMPTY
              }
              if (got + chunk.length > need) return reject(new BenchError(`bare server sent more than ${need} bytes for file ${index}`))
              if (chunk.length) chunks.push(chunk)
              got += chunk.length
              if (got < need) return
              const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)
              const want = files[index]!
              if (data.length !== want.size || xorPages(data) !== want.xor) {
                return reject(new BenchError(`bare client: ${want.path}: got ${data.length} bytes (xor ${xorPages(data)}), expected ${want.size} (xor ${want.xor})`))
              }
              bytes += data.length
              ask()
            })
            socket.once('error', reject)
            socket.once('close', () => reject(new BenchError('bare server closed a connection early')))
            ask()
          }),
      ),
    )
    return { ms: now() - t0, bytes }
  } finally {
    for (const s of sockets) s.destroy()
  }
}
