/**
 * Binding a net.Server: a listen that rejects instead of emitting 'error',
 * and a unix socket that no other user can connect to at any instant and that
 * replaces only the stale file a crashed server left behind.
 */
import { chmod, lstat, unlink } from 'node:fs/promises'
import net from 'node:net'

/** `server.listen(opts)`, resolved once bound, rejected with the bind's error. */
export function listenOn(server: net.Server, opts: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err)
    server.once('error', onError)
    server.listen(opts, () => {
      server.off('error', onError)
      resolve()
    })
  })
}

/** Listen on the unix socket `path` with permissions `mode`; a live socket or another kind of file there is EADDRINUSE. */
export async function listenUnix(server: net.Server, path: string, mode: number): Promise<void> {
  await removeStaleSocket(path)
  // Created with no permission for others from the first instant (umask), then set as asked.
  const umask = process.umask(0o177)
  try {
    await listenOn(server, { path })
  } finally {
    process.umask(umask)
  }
  await chmod(path, mode)
}

/** A socket file nobody answers on is left over from a crash: remove it. A live one is kept. */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null)
  if (!st) return
  if (!st.isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket; refusing to replace it`), { code: 'EADDRINUSE' })
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path })
    probe.once('connect', () => {
      probe.destroy()
      resolve(true)
    })
    probe.once('error', () => resolve(false))
  })
  if (alive) throw Object.assign(new Error(`another server is listening on unix:${path}`), { code: 'EADDRINUSE' })
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err
  })
}
