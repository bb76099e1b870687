/**
 * The tar blocks `tar` writes (lib/cli/tar-format.ts), read back by real
 * readers: Python's tarfile and, where installed, GNU tar. Member headers for
 * ustar names, prefix splits, pax paths, UTF-8, sizes past 8 GiB and mtimes
 * out of ustar's range; padding and the end-of-archive blocks; the truncation
 * mark that makes a failed stream fail its reader. Checksums and pax record
 * lengths are checked against POSIX here too.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, fstatSync, openSync, readFileSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { BLOCK, END_OF_ARCHIVE, type MemberHeader, memberHeader, padding, truncationMark } from '../../lib/cli/tar-format.js'
import { tempDir } from '../helpers/fixtures.js'

/** ustar's size and mtime fields hold 11 octal digits. */
const MAX_OCTAL = 8 ** 11 - 1

const NO_GNU_TAR = ((): string | false => {
  const r = spawnSync('tar', ['--version'], { encoding: 'utf8' })
  return r.status === 0 && r.stdout.includes('GNU tar') ? false : 'needs GNU tar'
})()

/** Every member of a tar read as Python's tarfile reads it: stdin in stream mode ('r|'), or a file by its path (seeking). */
const PY_READER = `
import hashlib, json, sys, tarfile
path = sys.argv[1]
t = tarfile.open(fileobj=sys.stdin.buffer, mode='r|') if path == '-' else tarfile.open(path, mode='r:')
for m in t:
    f = t.extractfile(m)
    out = {'name': m.name, 'size': m.size, 'mtime': m.mtime, 'mode': m.mode, 'reg': m.isreg(), 'pax': m.pax_headers}
    if m.size <= 1 << 24:
        out['sha256'] = hashlib.sha256(f.read()).hexdigest()
    else:
        f.seek(m.size - 16)
        out['tail'] = f.read().hex()
    print(json.dumps(out), flush=True)
`

/** The first member's header alone, from stdin (no data after it needed), and its last block parsed as plain ustar. */
const PY_HEADER = `
import json, sys, tarfile
data = sys.stdin.buffer.read()
m = tarfile.open(fileobj=__import__('io').BytesIO(data), mode='r|').next()
u = tarfile.TarInfo.frombuf(data[-512:], 'utf-8', 'surrogateescape')
print(json.dumps({'name': m.name, 'size': m.size, 'mtime': m.mtime, 'mode': m.mode, 'reg': m.isreg(), 'pax': m.pax_headers, 'ustarName': u.name, 'ustarSize': u.size, 'ustarMtime': u.mtime}))
`

interface PyMember {
  name: string
  size: number
  mtime: number
  mode: number
  reg: boolean
  pax: Record<string, string>
  sha256?: string
  tail?: string
}

function python(script: string, args: string[], input?: Buffer): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', ['-c', script, ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

function pyMembers(input: Buffer | string): PyMember[] {
  const r = typeof input === 'string' ? python(PY_READER, [input]) : python(PY_READER, ['-'], input)
  assert.equal(r.status, 0, r.stderr)
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as PyMember)
}

function pyHeader(header: Buffer): PyMember & { ustarName: string; ustarSize: number; ustarMtime: number } {
  const r = python(PY_HEADER, [], header)
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout) as PyMember & { ustarName: string; ustarSize: number; ustarMtime: number }
}

function gnuTar(args: string[], input?: Buffer): { status: number | null; stdout: Buffer; stderr: string } {
  const env = { ...process.env, LC_ALL: 'C.UTF-8', TZ: 'UTC' }
  const r = spawnSync('tar', args, { input, env, maxBuffer: 64 << 20, timeout: 60_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() }
}

interface Listed {
  perms: string
  size: number
  time: string
  name: string
}

/** `tar -tv --full-time` of an archive on stdin or at a path. */
function tarList(archive: Buffer | string): Listed[] {
  const r = typeof archive === 'string' ? gnuTar(['-tv', '--full-time', '--quoting-style=literal', '-f', archive]) : gnuTar(['-tv', '--full-time', '--quoting-style=literal', '-f', '-'], archive)
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stderr, '')
  return r.stdout
    .toString()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = /^(\S{10}) \S+\s+(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$/.exec(line)
      assert.ok(m, `not a tar -tv line: ${line}`)
      return { perms: m[1]!, size: Number(m[2]), time: m[3]!, name: m[4]! }
    })
}

/** What `tar -tv --full-time` shows for whole seconds since the epoch, in UTC. */
const fullTime = (seconds: number) => new Date(seconds * 1000).toISOString().slice(0, 19).replace('T', ' ')

/** ls-style permissions of a regular file. */
const perms = (mode: number) => `-${[6, 3, 0].map((s) => `${(mode >> s) & 4 ? 'r' : '-'}${(mode >> s) & 2 ? 'w' : '-'}${(mode >> s) & 1 ? 'x' : '-'}`).join('')}`

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A whole member: header, data, padding. */
const member = (h: Omit<MemberHeader, 'size'>, data: Buffer) => Buffer.concat([memberHeader({ ...h, size: data.length }), data, padding(data.length)])

/** A NUL-terminated (or full) header field. */
function field(block: Buffer, offset: number, length: number): string {
  const raw = block.subarray(offset, offset + length)
  const end = raw.indexOf(0)
  return raw.subarray(0, end === -1 ? length : end).toString('latin1')
}

/** POSIX: the header's bytes summed as unsigned, the chksum field (148..155) taken as eight spaces. */
function posixChecksum(block: Buffer): number {
  let sum = 0
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!
  return sum
}

interface Ustar {
  name: string
  prefix: string
  mode: number
  size: number
  mtime: number
  type: string
}

/** One header block's fields, its checksum and magic checked. */
function ustarBlock(block: Buffer): Ustar {
  assert.equal(block.length, BLOCK)
  const chk = field(block, 148, 8)
  assert.match(chk, /^[0-7]{6}$/, 'chksum: six octal digits, then NUL and space')
  assert.deepEqual([...block.subarray(154, 156)], [0, 0x20])
  assert.equal(parseInt(chk, 8), posixChecksum(block), 'chksum is the POSIX sum')
  assert.equal(block.toString('latin1', 257, 265), 'ustar\x0000', 'magic and version')
  for (const [offset, length] of [[100, 8], [108, 8], [116, 8], [124, 12], [136, 12]] as const) {
    assert.match(field(block, offset, length), /^[0-7]+$/, `numeric field at ${offset}`)
    assert.equal(block[offset + length - 1], 0, `numeric field at ${offset} ends with NUL`)
  }
  return {
    name: field(block, 0, 100),
    prefix: field(block, 345, 155),
    mode: parseInt(field(block, 100, 8), 8),
    size: parseInt(field(block, 124, 12), 8),
    mtime: parseInt(field(block, 136, 12), 8),
    type: block.toString('latin1', 156, 157),
  }
}

/** pax records `LEN key=value\n`, each LEN checked to be the record's length in bytes, its own digits included. */
function paxRecords(data: Buffer): [string, string][] {
  const out: [string, string][] = []
  let at = 0
  while (at < data.length) {
    const space = data.indexOf(0x20, at)
    assert.ok(space > at, 'a record starts with its length')
    const lenText = data.toString('latin1', at, space)
    assert.match(lenText, /^[1-9]\d*$/)
    const len = Number(lenText)
    assert.ok(at + len <= data.length, `record of ${len} bytes at ${at} runs past the ${data.length} announced`)
    const record = data.subarray(space + 1, at + len)
    assert.equal(record.at(-1), 0x0a, `record of ${len} bytes at ${at} ends with a newline`)
    const text = record.subarray(0, -1).toString('utf8')
    const eq = text.indexOf('=')
    assert.ok(eq > 0, 'key=value')
    out.push([text.slice(0, eq), text.slice(eq + 1)])
    at += len
  }
  return out
}

/** The blocks memberHeader wrote: the ustar block, and the pax header's records when there is one. */
function parseMemberHeader(header: Buffer): { ustar: Ustar; pax: [string, string][] | null } {
  assert.equal(header.length % BLOCK, 0)
  const ustar = ustarBlock(header.subarray(-BLOCK))
  assert.equal(ustar.type, '0')
  if (header.length === BLOCK) return { ustar, pax: null }
  const x = ustarBlock(header.subarray(0, BLOCK))
  assert.equal(x.type, 'x')
  assert.equal(header.length, BLOCK + x.size + padding(x.size).length + BLOCK, 'pax header, records padded to a block, ustar block')
  assert.ok(header.subarray(BLOCK + x.size, -BLOCK).every((b) => b === 0), 'records padded with zeros')
  return { ustar, pax: paxRecords(header.subarray(BLOCK, BLOCK + x.size)) }
}

const MTIME_MS = 1_700_000_000_987

/** Names each member of the round-trip archive takes, and whether ustar alone holds it. */
const NAMES: { name: string; ustar: boolean; why: string }[] = [
  { name: 'a.txt', ustar: true, why: 'short' },
  { name: 'x'.repeat(100), ustar: true, why: 'exactly 100 bytes, no NUL' },
  { name: `${'d'.repeat(60)}/${'e'.repeat(60)}/file-${'f'.repeat(40)}.bin`, ustar: true, why: 'prefix and name' },
  { name: `${'p'.repeat(77)}/${'q'.repeat(77)}/${'n'.repeat(100)}`, ustar: true, why: 'prefix of 155 and name of 100' },
  { name: `a/b/${'n'.repeat(100)}`, ustar: true, why: 'split at the last slash that fits' },
  { name: `${'deep/'.repeat(60)}leaf.txt`, ustar: false, why: 'longer than 256' },
  { name: `${'p'.repeat(156)}/n`, ustar: false, why: 'prefix of 156' },
  { name: `dir/${'n'.repeat(101)}`, ustar: false, why: 'last component of 101' },
  { name: 'y'.repeat(101), ustar: false, why: 'no slash to split at' },
  { name: 'données/été/π-日本.txt', ustar: false, why: 'UTF-8' },
  { name: `emoji/🙂-${'z'.repeat(120)}.bin`, ustar: false, why: 'UTF-8 and long' },
]
const MODES = [0o644, 0o755, 0o600, 0o444, 0o640]
const SIZES = [0, 1, 511, 512, 513, 1000, 1024, 4097, 100_000, 3, 70_000]

/** The round-trip archive: every name, its own size, mtime and mode, then the end-of-archive blocks. */
function roundTrip(): { archive: Buffer; members: { name: string; data: Buffer; mtime: number; mode: number }[] } {
  const members = NAMES.map(({ name }, i) => ({ name, data: randomBytes(SIZES[i]!), mtime: Math.floor((MTIME_MS + i * 86_400_500) / 1000), mode: MODES[i % MODES.length]! }))
  const archive = Buffer.concat([...members.map((m, i) => member({ name: m.name, mtimeMs: MTIME_MS + i * 86_400_500, mode: m.mode }, m.data)), END_OF_ARCHIVE])
  return { archive, members }
}

describe('memberHeader', () => {
  test("every kind of name reads back through Python's tarfile in stream mode: name, size, mtime, mode and bytes", () => {
    const { archive, members } = roundTrip()
    const got = pyMembers(archive)
    assert.deepEqual(
      got.map(({ name, size, mtime, mode, reg, sha256 }) => ({ name, size, mtime, mode, reg, sha256 })),
      members.map((m) => ({ name: m.name, size: m.data.length, mtime: m.mtime, mode: m.mode, reg: true, sha256: sha(m.data) })),
    )
  })

  test('every kind of name is listed by GNU tar -tv and extracted by tar -x: name, size, mtime, mode and bytes', { skip: NO_GNU_TAR }, (t) => {
    const { archive, members } = roundTrip()
    assert.deepEqual(
      tarList(archive),
      members.map((m) => ({ perms: perms(m.mode), size: m.data.length, time: fullTime(m.mtime), name: m.name })),
    )
    const dir = tempDir(t, 'cacheserv-tar-format-')
    const x = gnuTar(['-x', '-p', '-f', '-', '-C', dir], archive)
    assert.equal(x.status, 0, x.stderr)
    assert.equal(x.stderr, '')
    for (const m of members) {
      const path = join(dir, m.name)
      const st = statSync(path)
      assert.ok(st.isFile(), m.name)
      assert.equal(st.mode & 0o7777, m.mode, m.name)
      assert.equal(st.mtimeMs, m.mtime * 1000, m.name)
      assert.ok(readFileSync(path).equals(m.data), m.name)
    }
  })

  test('ustar holds a name of up to 100 bytes, or one split at a slash into a prefix of up to 155; any other name goes in a pax path', () => {
    for (const { name, ustar, why } of [...NAMES, { name: `/${'n'.repeat(100)}`, ustar: false, why: 'an empty prefix would lose the leading slash' }]) {
      const header = memberHeader({ name, size: 5, mtimeMs: MTIME_MS })
      const { ustar: u, pax } = parseMemberHeader(header)
      const py = pyHeader(header)
      assert.equal(py.name, name, why)
      if (ustar) {
        assert.equal(pax, null, `${why}: no pax header`)
        assert.equal(u.prefix === '' ? u.name : `${u.prefix}/${u.name}`, name, why)
        assert.equal(py.ustarName, name, `${why}: a reader without pax sees the name`)
      } else {
        assert.deepEqual(pax, [['path', name]], why)
        assert.equal(u.prefix, '', why)
        assert.match(u.name, /^[\x20-\x7e]{1,100}$/, `${why}: the ustar stand-in is printable ASCII`)
        if (/^[\x20-\x7e]*$/.test(name)) assert.ok(name.endsWith(u.name), `${why}: the stand-in is the name's tail`)
        assert.equal(py.ustarName, u.name, why)
      }
    }
  })

  test('pax records count their own digits, at every length where the count gains a digit', () => {
    // ` path=NAME\n` is 7 bytes plus the name's: bodies around 9, 99 and 999 bytes.
    const seen = new Set<number>()
    for (const body of [9, 10, 11, 96, 97, 98, 99, 100, 101, 995, 996, 997, 998, 999, 1000, 1001]) {
      const name = `é${'a'.repeat(body - 7 - 2)}` // 'é' is 2 bytes and makes it a pax path
      const header = memberHeader({ name, size: 1, mtimeMs: MTIME_MS })
      const { pax } = parseMemberHeader(header)
      assert.deepEqual(pax, [['path', name]])
      const records = header.subarray(BLOCK, BLOCK + ustarBlock(header.subarray(0, BLOCK)).size)
      seen.add(records.length)
      assert.equal(pyHeader(header).name, name, `body of ${body} bytes`)
    }
    for (const len of [11, 99, 101, 102, 999, 1001, 1002]) assert.ok(seen.has(len), `a record of ${len} bytes was written`)
    for (const len of [10, 100, 1000]) assert.ok(!seen.has(len), `no record claims ${len} bytes: that length cannot count itself`)
  })

  test('the header holds whole seconds of mtimeMs, floored; mtime 0 and negative mtimes are 0', (t) => {
    const cases: [number, number][] = [
      [MTIME_MS, 1_700_000_000],
      [1_700_000_000_000, 1_700_000_000],
      [999, 0],
      [0, 0],
      [-1, 0],
      [-1500, 0],
      [-86_400_000 * 365 * 30, 0],
      [MAX_OCTAL * 1000 + 999, MAX_OCTAL],
    ]
    for (const [mtimeMs, seconds] of cases) {
      const header = memberHeader({ name: 'm.bin', size: 0, mtimeMs })
      const { ustar, pax } = parseMemberHeader(header)
      assert.equal(pax, null, `${mtimeMs}: no pax header`)
      assert.equal(ustar.mtime, seconds, String(mtimeMs))
      assert.equal(pyHeader(header).mtime, seconds, String(mtimeMs))
    }
    if (NO_GNU_TAR) return t.diagnostic(`GNU tar not checked: ${NO_GNU_TAR}`)
    const archive = Buffer.concat([...cases.map(([mtimeMs], i) => member({ name: `m${i}.bin`, mtimeMs }, Buffer.from('x'))), END_OF_ARCHIVE])
    assert.deepEqual(
      tarList(archive).map((l) => l.time),
      cases.map(([, s]) => fullTime(s)),
    )
  })

  test('an mtime past 11 octal digits goes in a pax mtime record, the ustar field holding the most it can', (t) => {
    const seconds = MAX_OCTAL + 1 + 12_345
    const header = memberHeader({ name: 'future.bin', size: 3, mtimeMs: seconds * 1000 + 250 })
    const { ustar, pax } = parseMemberHeader(header)
    assert.deepEqual(pax, [['mtime', String(seconds)]])
    assert.equal(ustar.mtime, MAX_OCTAL)
    assert.equal(ustarBlock(header.subarray(0, BLOCK)).mtime, MAX_OCTAL, "the pax header's own mtime is clamped too")
    const py = pyHeader(header)
    assert.equal(py.mtime, seconds)
    assert.equal(py.ustarMtime, MAX_OCTAL)
    const archive = Buffer.concat([member({ name: 'future.bin', mtimeMs: seconds * 1000 + 250 }, Buffer.from('abc')), END_OF_ARCHIVE])
    assert.deepEqual(pyMembers(archive).map((m) => [m.name, m.mtime, m.sha256]), [['future.bin', seconds, sha(Buffer.from('abc'))]])
    if (NO_GNU_TAR) return t.diagnostic(`GNU tar not checked: ${NO_GNU_TAR}`)
    assert.deepEqual(tarList(archive), [{ perms: perms(0o644), size: 3, time: fullTime(seconds), name: 'future.bin' }])
  })

  test('a size past 11 octal digits (8 GiB) goes in a pax size record: the header parses, without 8 GiB of data', () => {
    const fits = memberHeader({ name: 'edge.bin', size: MAX_OCTAL, mtimeMs: MTIME_MS })
    assert.equal(parseMemberHeader(fits).pax, null, '8 GiB - 1 fits ustar')
    assert.equal(parseMemberHeader(fits).ustar.size, MAX_OCTAL)
    assert.equal(pyHeader(fits).size, MAX_OCTAL)
    for (const size of [MAX_OCTAL + 1, MAX_OCTAL + 5, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
      const header = memberHeader({ name: 'huge.bin', size, mtimeMs: MTIME_MS, mode: 0o600 })
      const { ustar, pax } = parseMemberHeader(header)
      assert.deepEqual(pax, [['size', String(size)]], String(size))
      assert.equal(ustar.size, MAX_OCTAL, `${size}: the ustar field holds the most it can`)
      const py = pyHeader(header)
      assert.deepEqual([py.name, py.size, py.mtime, py.mode, py.reg], ['huge.bin', size, Math.floor(MTIME_MS / 1000), 0o600, true], String(size))
    }
    // A long UTF-8 name, a big size and a far mtime all at once: one pax header holds the three.
    const name = `données/${'é'.repeat(80)}.bin`
    const all = memberHeader({ name, size: MAX_OCTAL + 2, mtimeMs: (MAX_OCTAL + 2) * 1000 })
    assert.deepEqual(parseMemberHeader(all).pax, [['path', name], ['size', String(MAX_OCTAL + 2)], ['mtime', String(MAX_OCTAL + 2)]])
    const py = pyHeader(all)
    assert.deepEqual([py.name, py.size, py.mtime], [name, MAX_OCTAL + 2, MAX_OCTAL + 2])
  })

  test('a sparse archive with a member past 8 GiB reads through to the member after it, in tarfile and GNU tar', (t) => {
    const size = MAX_OCTAL + 1 + 5
    const tail = randomBytes(16)
    const after = randomBytes(700)
    const path = join(tempDir(t, 'cacheserv-tar-format-'), 'huge.tar')
    const fd = openSync(path, 'w')
    try {
      const header = memberHeader({ name: 'huge.bin', size, mtimeMs: MTIME_MS, mode: 0o600 })
      writeSync(fd, header, 0, header.length, 0)
      writeSync(fd, tail, 0, tail.length, header.length + size - tail.length) // the data up to it a hole
      const rest = Buffer.concat([padding(size), member({ name: 'after.bin', mtimeMs: MTIME_MS }, after), END_OF_ARCHIVE])
      writeSync(fd, rest, 0, rest.length, header.length + size)
      if (fstatSync(fd).blocks * 512 > 64 << 20) return t.skip(`${path}: its file system does not keep holes`)
    } finally {
      closeSync(fd)
    }
    assert.deepEqual(pyMembers(path), [
      { name: 'huge.bin', size, mtime: Math.floor(MTIME_MS / 1000), mode: 0o600, reg: true, pax: { size: String(size) }, tail: tail.toString('hex') },
      { name: 'after.bin', size: 700, mtime: Math.floor(MTIME_MS / 1000), mode: 0o644, reg: true, pax: {}, sha256: sha(after) },
    ])
    if (NO_GNU_TAR) return t.diagnostic(`GNU tar not checked: ${NO_GNU_TAR}`)
    assert.deepEqual(tarList(path), [
      { perms: perms(0o600), size, time: fullTime(Math.floor(MTIME_MS / 1000)), name: 'huge.bin' },
      { perms: perms(0o644), size: 700, time: fullTime(Math.floor(MTIME_MS / 1000)), name: 'after.bin' },
    ])
    const x = gnuTar(['-xO', '-f', path, 'after.bin'])
    assert.equal(x.status, 0, x.stderr)
    assert.ok(x.stdout.equals(after), 'tar -x seeks past the 8 GiB member to the one after it')
  })

  test('a mode given is the mode written; none is 0644', () => {
    assert.equal(parseMemberHeader(memberHeader({ name: 'a', size: 0, mtimeMs: 0 })).ustar.mode, 0o644)
    for (const mode of [0o755, 0o600, 0o000, 0o777, 0o4755, 0o1777]) {
      const header = memberHeader({ name: 'a', size: 0, mtimeMs: 0, mode })
      assert.equal(parseMemberHeader(header).ustar.mode, mode)
      assert.equal(pyHeader(header).mode, mode)
    }
  })
  test('refuses a size or an mtime no reader would take, with EPROTO', () => {
    for (const size of [-5, 1.5, Number.NaN, 2 ** 60]) {
      assert.throws(() => memberHeader({ name: 'a.bin', size, mtimeMs: 0 }), { code: 'EPROTO' }, String(size))
    }
    for (const mtimeMs of [Number.NaN, Infinity, undefined as unknown as number]) {
      assert.throws(() => memberHeader({ name: 'a.bin', size: 1, mtimeMs }), { code: 'EPROTO' }, String(mtimeMs))
    }
  })
})

describe('padding and END_OF_ARCHIVE', () => {
  test('padding fills a member up to a whole block with zeros, and is empty at a block boundary', () => {
    for (const [size, want] of [[0, 0], [1, 511], [100, 412], [511, 1], [512, 0], [513, 511], [1024, 0], [MAX_OCTAL + 1, 0], [MAX_OCTAL, 1]] as const) {
      const p = padding(size)
      assert.equal(p.length, want, String(size))
      assert.ok(p.every((b) => b === 0), String(size))
      assert.equal((size + p.length) % BLOCK, 0, String(size))
    }
  })

  test('END_OF_ARCHIVE is two zero blocks, where tarfile and GNU tar stop reading whatever follows', { skip: NO_GNU_TAR }, () => {
    assert.equal(END_OF_ARCHIVE.length, 2 * BLOCK)
    assert.ok(END_OF_ARCHIVE.every((b) => b === 0))
    const one = member({ name: 'one.txt', mtimeMs: MTIME_MS }, Buffer.from('one'))
    const two = member({ name: 'two.txt', mtimeMs: MTIME_MS }, Buffer.from('two'))
    assert.deepEqual(tarList(Buffer.concat([one, END_OF_ARCHIVE, two])).map((l) => l.name), ['one.txt'])
    assert.deepEqual(pyMembers(Buffer.concat([one, END_OF_ARCHIVE, two])).map((m) => m.name), ['one.txt'])
    assert.deepEqual(tarList(Buffer.concat([one, two, END_OF_ARCHIVE])).map((l) => l.name), ['one.txt', 'two.txt'])
  })
})

describe('truncationMark', () => {
  const REASONS = ['ECONNRESET: read ECONNRESET', 'EIO: boom\nat line 2\n', 'échec: 日本語のパス/🙂.bin', '', 'x'.repeat(2000)]

  test('is a pax header announcing a comment its stream stops inside of: the reason, newlines as spaces', () => {
    for (const reason of REASONS) {
      const mark = truncationMark(reason)
      const x = ustarBlock(mark.subarray(0, BLOCK))
      assert.equal(x.type, 'x')
      assert.ok(Math.abs(x.mtime - Date.now() / 1000) < 60, 'stamped now')
      assert.equal(mark.length, BLOCK + x.size, 'the records and nothing after them')
      assert.deepEqual(paxRecords(mark.subarray(BLOCK)), [['comment', `cacheserv-pipe-client: archive incomplete: ${reason.replace(/\n/g, ' ')}`]])
    }
  })

  test("after whole members, Python's tarfile in stream mode raises ReadError, having read them", () => {
    const a = randomBytes(1000)
    const b = randomBytes(512)
    for (const reason of REASONS) {
      const stream = Buffer.concat([member({ name: 'a.bin', mtimeMs: MTIME_MS }, a), member({ name: 'b.bin', mtimeMs: MTIME_MS }, b), truncationMark(reason)])
      const r = python(PY_READER, ['-'], stream)
      assert.notEqual(r.status, 0, JSON.stringify(reason))
      assert.match(r.stderr, /tarfile\.ReadError/, JSON.stringify(reason))
      assert.deepEqual(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as PyMember).sha256), [sha(a), sha(b)])
    }
  })

  test('after whole members, GNU tar reports "Unexpected EOF in archive" and exits 2', { skip: NO_GNU_TAR }, () => {
    for (const reason of REASONS) {
      const stream = Buffer.concat([member({ name: 'a.bin', mtimeMs: MTIME_MS }, Buffer.from('abc')), truncationMark(reason)])
      const r = gnuTar(['-tv', '-f', '-'], stream)
      assert.equal(r.status, 2, JSON.stringify(reason))
      assert.match(r.stderr, /Unexpected EOF in archive/, JSON.stringify(reason))
    }
  })

  test("readers fail whatever the reason's length, even where the comment record would come to whole blocks", () => {
    // Records of exactly 512 bytes would end the stream at a block boundary: a reason of 456 ASCII characters did.
    for (let n = 0; n <= 2100; n++) assert.notEqual((truncationMark('x'.repeat(n)).length - BLOCK) % BLOCK, 0, `a reason of ${n} bytes`)
    for (const n of [455, 456, 967, 1479, 1991]) {
      const stream = Buffer.concat([member({ name: 'a.bin', mtimeMs: MTIME_MS }, Buffer.from('abc')), truncationMark('x'.repeat(n))])
      const py = python(PY_READER, ['-'], stream)
      assert.notEqual(py.status, 0, `reason of ${n} bytes`)
      assert.match(py.stderr, /tarfile\.ReadError/, `reason of ${n} bytes`)
      if (NO_GNU_TAR) continue
      const r = gnuTar(['-tv', '-f', '-'], stream)
      assert.equal(r.status, 2, `GNU tar on a mark whose reason is ${n} bytes: exit ${r.status}, stderr ${JSON.stringify(r.stderr)}`)
    }
  })
})
