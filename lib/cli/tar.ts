/**
 * `tar`: files as a POSIX tar stream on stdout (tar-stream writes it), in
 * order, over one connection. Small files are fetched a few ahead (their
 * reads pipelined); a big one is streamed through on its own, so memory stays
 * bounded whatever the sizes. Python reads it with
 * `tarfile.open(fileobj=sys.stdin.buffer, mode='r|')` (the WebDataset way).
 */
import tar from 'tar-stream'
import type { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Client } from '../client/client.js'
import type { ReadInfo } from '../client/read-stream.js'
import type { RemoteFile } from '../client/tree.js'
import { error } from '../errors.js'

/** Files up to this size are fetched ahead, whole. */
const SMALL = 16 * 1024 * 1024
const AHEAD_FILES = 8
const AHEAD_BYTES = 64 * 1024 * 1024

export async function writeTar(client: Client, files: RemoteFile[], out: Writable): Promise<void> {
  const pack = tar.pack()
  const sent = pipeline(pack, out)
  let outErr: Error | null = null
  sent.catch((err: Error) => (outErr = err)) // awaited below; a reader that left (EPIPE) ends us
  const ahead: { file: RemoteFile; data: Promise<Buffer> | null }[] = []
  let next = 0
  let aheadBytes = 0
  const refill = () => {
    while (next < files.length && ahead.length < AHEAD_FILES) {
      const file = files[next]
      const small = file.size <= SMALL
      if (!small && ahead.length > 0) return // a big file waits for its turn, then streams alone
      if (small && ahead.length > 0 && aheadBytes + file.size > AHEAD_BYTES) return
      const data = small ? client.readFile(file.path) : null
      data?.catch(() => {}) // surfaced when its turn comes
      ahead.push({ file, data })
      aheadBytes += small ? file.size : 0
      next++
      if (!small) return
    }
  }
  try {
    refill()
    while (ahead.length > 0) {
      const { file, data } = ahead.shift()!
      const header = { name: file.path, size: file.size, mode: 0o644, mtime: new Date() }
      if (data) {
        const buf = await data
        aheadBytes -= file.size
        if (buf.length !== file.size) throw changedSize(file.path)
        await new Promise<void>((resolve, reject) => {
          // The callback hears of errors; without a listener the entry would also throw them.
          pack.entry(header, buf, (err) => (err ? reject(err) : resolve())).on('error', () => {})
        })
      } else {
        // The header already says file.size: another size now (START tells) must fail before a byte goes in.
        const stream = client.read(file.path)
        stream.once('info', (info: ReadInfo) => {
          if (info.size !== file.size) stream.destroy(changedSize(file.path))
        })
        await pipeline(stream, pack.entry(header))
      }
      refill()
    }
    pack.finalize()
    await sent
  } catch (err) {
    pack.destroy(err as Error)
    throw outErr ?? err
  }
}

function changedSize(path: string): Error {
  return error('ECHANGED', `${path} changed size while the archive was written; run it again`)
}
