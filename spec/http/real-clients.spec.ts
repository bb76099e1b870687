/**
 * The gateway with clients nobody here wrote: Python's fsspec HTTPFileSystem
 * (HEAD for sizes, ranged reads, directory pages, suffix ranges) and the
 * WebDataset way of reading a shard, `curl -f -s -L URL | python tarfile`.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { run } from '../helpers/cli.js'
import { writeFile } from '../helpers/fixtures.js'
import { startGateway } from '../helpers/http.js'

const MiB = 1024 * 1024
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function findPython(imports: string): Promise<string | null> {
  const candidates = process.env.PYTHON_LIBS ? [process.env.PYTHON_LIBS] : ['/usr/bin/python3', 'python3']
  for (const py of candidates) {
    const r = await run(py, ['-c', imports], { timeout: 60_000 }).catch(() => null)
    if (r && r.code === 0) return py
  }
  return null
}

const FSSPEC = String.raw`
import json, os, random, sys
from fsspec.implementations.http import HTTPFileSystem
base, root = sys.argv[1], sys.argv[2]
fs = HTTPFileSystem()
want = open(os.path.join(root, 'data', 'big.bin'), 'rb').read()
url = base + '/data/big.bin'
assert fs.size(url) == len(want), (fs.size(url), len(want))
rnd = random.Random(7)
with fs.open(url, 'rb', block_size=5 * 2**20) as f:
    for _ in range(40):
        at = rnd.randrange(len(want))
        n = rnd.choice([1, 100, 65536, 2**20 + 3, 5 * 2**20 + 11])
        f.seek(at)
        got = f.read(n)
        assert got == want[at:at + n], ('range', at, n, len(got))
assert fs.cat_file(url, start=-1000) == want[-1000:]
assert fs.cat_file(url, start=10, end=20) == want[10:20]
names = sorted(os.path.basename(e['name'].rstrip('/')) for e in fs.ls(base + '/data/', detail=True))
assert names == ['big.bin', 'small.txt', 'sub'], names
sizes = {os.path.basename(e['name']): e.get('size') for e in fs.ls(base + '/data/', detail=True) if e['type'] == 'file'}
assert sizes.get('small.txt') in (None, 6), sizes
assert fs.cat_file(base + '/data/sub/inner.txt') == b'inner\n'
print('ok')
`

const TARFILE = String.raw`
import hashlib, sys, tarfile
t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|')
for m in t:
    if m.isfile():
        print(m.name, hashlib.sha256(t.extractfile(m).read()).hexdigest())
`

describe('the HTTP gateway with real clients', () => {
  test('fsspec HTTPFileSystem: sizes, random ranged reads across blocks, suffix ranges, directory listings', { timeout: 120_000 }, async (t) => {
    const python = await findPython('import fsspec, aiohttp')
    if (!python) return assert.fail('no Python that imports fsspec and aiohttp (apt-get install python3-fsspec python3-aiohttp)')
    const g = await startGateway(t, { blockSize: MiB, cacheSize: 64 * MiB })
    writeFile(g.root, 'data/big.bin', 12 * MiB + 12_345)
    writeFile(g.root, 'data/small.txt', 'small\n')
    writeFile(g.root, 'data/sub/inner.txt', 'inner\n')
    const r = await run(python, ['-c', FSSPEC, g.base, g.root], { timeout: 110_000 })
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`)
    assert.match(r.stdout.toString(), /^ok$/m)
  })

  test('a WebDataset shard: curl -f -s -L URL | python tarfile mode "r|", every member byte-exact', { timeout: 60_000 }, async (t) => {
    const python = await findPython('import tarfile')
    assert.ok(python, 'no Python')
    const g = await startGateway(t, { blockSize: MiB, cacheSize: 64 * MiB })
    const members = new Map<string, Buffer>()
    for (let i = 0; i < 30; i++) members.set(`s/${String(i).padStart(6, '0')}.jpg`, writeFile(g.root, `src/s/${String(i).padStart(6, '0')}.jpg`, 1000 + i * 37_001))
    const tar = await run('tar', ['-C', join(g.root, 'src'), '-cf', join(g.root, 'shard-000000.tar'), ...members.keys()])
    assert.equal(tar.code, 0, tar.stderr)
    const r = await run('bash', ['-c', `set -o pipefail; curl -f -s -L "$0/shard-000000.tar" | "$1" -c "$2"`, g.base, python!, TARFILE], { timeout: 50_000 })
    assert.equal(r.code, 0, r.stderr)
    const got = new Map(r.stdout.toString().trim().split('\n').map((l) => l.split(' ') as [string, string]))
    assert.equal(got.size, members.size)
    for (const [name, data] of members) assert.equal(got.get(name), sha(data), name)
  })
})
