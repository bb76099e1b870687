/** The files `tar` archives: a tree on the server, or the paths listed in a file. Loaded by `tar` only. */
import { readFile } from 'node:fs/promises'
import type { Client } from '../client/client.js'
import { listTree, type RemoteFile } from '../client/tree.js'
import { error } from '../errors.js'

export async function tarFiles(client: Client, dir: string, list: string | undefined): Promise<RemoteFile[]> {
  return list === undefined ? listTree(client, dir) : listed(client, list)
}

/** Paths listed in a file (or stdin), one a line, with their sizes from the server (stat, pipelined). */
async function listed(client: Client, list: string): Promise<RemoteFile[]> {
  const text = list === '-' ? await new Promise<string>((resolve, reject) => {
    let s = ''
    process.stdin.setEncoding('utf8').on('data', (c: string) => (s += c)).on('end', () => resolve(s)).on('error', reject)
  }) : await readFile(list, 'utf8')
  const paths = text.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  const sizes = await Promise.all(paths.map((p) => client.stat(p)))
  return paths.map((path, i) => {
    if (sizes[i].type !== 'file') throw error('EISDIR', `${path} in the list is not a file`)
    return { path, size: sizes[i].size }
  })
}
