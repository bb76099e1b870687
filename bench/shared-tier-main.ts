/**
 * The shared-tier section alone, over a dataset made for it (or one given):
 * `node dist-bench/bench/shared-tier-main.js [FILES | DIR LIST]`.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeImages, torchPython } from './ml-epoch.js'
import { stopAll } from './procs.js'
import { sharedTierEpoch } from './shared-tier.js'
import { formatTables } from './table.js'

async function main(): Promise<void> {
  const python = torchPython()
  if (!python) throw new Error('no Python that imports torch')
  const [a, b] = process.argv.slice(2)
  const tmp = mkdtempSync(join(tmpdir(), 'cacheserv-tier-'))
  try {
    let root: string
    let listing: string
    if (b) {
      root = a!
      listing = b
    } else {
      root = join(tmp, 'images')
      const made = makeImages(root, Number(a ?? 3000))
      listing = join(tmp, 'images.txt')
      writeFileSync(listing, made.paths.join('\n'))
    }
    const paths = readFileSync(listing, 'utf8').split('\n').filter(Boolean)
    let bytes = 0
    for (const p of paths) bytes += statSync(join(root, p)).size
    const r = await sharedTierEpoch({ root, files: paths.length, bytes, python }, listing, [2, 3], 120_000)
    for (const n of r.notes) console.log(n)
    console.log(formatTables(r.rows, r.targets))
  } finally {
    await stopAll()
    rmSync(tmp, { recursive: true, force: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
