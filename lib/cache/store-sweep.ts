/**
 * The start-up sweep of shared-memory stores (ShmStore) that no server runs
 * on and none will adopt. Their tmpfs pages are memory nobody else gets back
 * until they are removed.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import createDebug from '../debug.js'
import { alive, readFileQuiet } from './store-dir.js'

const debug = createDebug('cacheserv:shm')

/**
 * Remove the stores under `parent` (named `prefix`…) of this user that no
 * server runs on and none will adopt: a temporary one, or one whose served
 * directory is gone. Returns the directories removed.
 */
export function sweepStores(parent: string, prefix: string): string[] {
  const removed: string[] = []
  let names: string[]
  try {
    names = readdirSync(parent).filter((n) => n.startsWith(prefix))
  } catch {
    return removed
  }
  const uid = process.getuid?.()
  for (const name of names) {
    const dir = join(parent, name)
    try {
      const st = lstatSync(dir)
      if (!st.isDirectory() || st.uid !== uid) continue
      // No owner file: being made right now, or not a store.
      const pid = Number.parseInt(readFileSync(join(dir, 'owner'), 'utf8'), 10)
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) continue
      const root = readFileQuiet(join(dir, 'root'))
      if (root !== undefined && existsSync(root) && !existsSync(join(dir, 'temporary'))) continue
      rmSync(dir, { recursive: true, force: true })
      removed.push(dir)
    } catch (err) {
      debug('sweeping %s: %s', dir, (err as Error).message)
    }
  }
  return removed
}
