/** Every file under a directory on the server, depth first in name order, with sizes (one `ls` per directory). */
import type { Client } from './client.js'

export interface RemoteFile {
  path: string
  size: number
}

export async function listTree(client: Client, dir: string): Promise<RemoteFile[]> {
  const out: RemoteFile[] = []
  const base = dir.replace(/^\/+|\/+$/g, '')
  for (const e of await client.ls(base)) {
    const path = base === '' ? e.name : `${base}/${e.name}`
    if (e.type === 'file') out.push({ path, size: e.size ?? (await client.stat(path)).size })
    else if (e.type === 'dir') out.push(...(await listTree(client, path)))
  }
  return out
}
