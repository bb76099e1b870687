/** walk: the files under a path inside the root, in order, from a cursor, never out of the root. */
import assert from 'node:assert/strict'
import { mkdirSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { Jail } from '../../lib/fs/jail.js'
import { compareSegments, walk } from '../../lib/fs/walk.js'
import { tempDir, writeFile } from '../helpers/fixtures.js'

async function paths(jail: Jail, path: string, after?: string): Promise<string[]> {
  const out: string[] = []
  for await (const f of walk(jail, path, undefined, after)) out.push(f.rel)
  return out
}

test('segment order: name by name, a directory before everything in it', () => {
  assert.ok(compareSegments(['a', 'z'], ['a.b']) < 0, 'a/z before a.b, though "a/z" > "a.b" as strings')
  assert.ok(compareSegments(['a'], ['a', 'b']) < 0)
  assert.ok(compareSegments(['b'], ['a', 'z']) > 0)
  assert.equal(compareSegments(['x', 'y'], ['x', 'y']), 0)
})

test('from a cursor: only what comes after it, whatever depth it is at, and directories before it are not read', async (t) => {
  const root = tempDir(t)
  for (const rel of ['a/b/1', 'a/b/2', 'a/c', 'a.b', 'b/x/y/z', 'b/x/zz', 'c']) writeFile(root, rel, 1)
  const jail = await Jail.open(root)
  const all = await paths(jail, '')
  assert.deepEqual(all, ['a/b/1', 'a/b/2', 'a/c', 'a.b', 'b/x/y/z', 'b/x/zz', 'c'])
  for (let i = 0; i < all.length; i++) assert.deepEqual(await paths(jail, '', all[i]), all.slice(i + 1), `after ${all[i]}`)
  // A cursor that names no file (removed since) still splits the order where it would be.
  assert.deepEqual(await paths(jail, '', 'a/b/15'), ['a/b/2', 'a/c', 'a.b', 'b/x/y/z', 'b/x/zz', 'c'])
  assert.deepEqual(await paths(jail, '', 'b'), ['b/x/y/z', 'b/x/zz', 'c'])
  assert.deepEqual(await paths(jail, 'b', 'b/x/y/z'), ['b/x/zz'])
  // A directory before the cursor is not read: an unreadable one does not fail the walk.
  mkdirSync(join(root, 'a/locked'), { mode: 0o000 })
  if (process.getuid?.() !== 0) assert.deepEqual(await paths(jail, '', 'a/locked/zzz'), ['a.b', 'b/x/y/z', 'b/x/zz', 'c'])
})

test('symlinks inside the root are followed once; those out of it are not', async (t) => {
  const root = tempDir(t)
  const outside = tempDir(t)
  writeFile(outside, 'secret', 1)
  writeFile(root, 'd/f', 1)
  symlinkSync('d', join(root, 'e'))
  symlinkSync(outside, join(root, 'out'))
  const jail = await Jail.open(root)
  assert.deepEqual(await paths(jail, ''), ['d/f'])
  assert.deepEqual(await paths(jail, 'e'), ['e/f'])
})
