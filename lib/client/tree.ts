/** Every file under a directory on the server, depth first in name order, with sizes (one `ls` per directory, each when the walk reaches it). */
import type { Client } from './client.js'

export interface RemoteFile {
  path: string
  size: number
}

export async function* walkTree(client: Client, dir: string): AsyncGenerator<RemoteFile> {
  const base = dir.replace(/^\/+|\/+$/g, '')
  for (const e of await client.ls(base)) {
    const path = base === '' ? e.name : `${base}/${e.name}`
    if (e.type === 'file') yield { path, size: e.size ?? (await client.stat(path)).size }
    else if (e.type === 'dir') yield* walkTree(client, path)
  }
}
