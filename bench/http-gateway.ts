/**
 * The HTTP gateway against nginx serving the same files with sendfile:
 * curl GETs of the hot big file, and fsspec's HTTPFileSystem reading random
 * 5 MiB ranges of it (each range checked against the file). nginx comes from
 * Debian's package, installed when missing and possible; without it the
 * section reports the gateway alone, with a note.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import type { ChildProcess } from 'node:child_process'
import type { Dataset } from './data.js'
import type { Contender } from './measure.js'
import { shell, start, stop } from './procs.js'
import { BenchError } from './util.js'

const NGINX = '/usr/sbin/nginx'

/** Single-quote for sh. */
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise((resolve) => srv.close(resolve))
  return port
}

/** nginx on a loopback port serving `root`, or why not. */
export async function startNginx(dir: string, root: string, log: (s: string) => void): Promise<{ child: ChildProcess; url: string } | { skipped: string }> {
  if (!existsSync(NGINX)) {
    if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) return { skipped: 'nginx is not installed (apt-get install nginx-light)' }
    log('http: installing nginx-light from the Debian archive')
    try {
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx-light'], { stdio: 'ignore', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
    } catch {
      return { skipped: 'nginx could not be installed (apt-get install nginx-light failed)' }
    }
    if (!existsSync(NGINX)) return { skipped: 'nginx is not installed' }
  }
  const port = await freePort()
  const conf = join(dir, 'nginx.conf')
  writeFileSync(
    conf,
    `daemon off;\nworker_processes 1;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'nginx-error.log')};\n` +
      `events { worker_connections 64; }\nhttp {\n  access_log off;\n  sendfile on;\n  tcp_nopush on;\n` +
      `  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};\n` +
      `  server { listen 127.0.0.1:${port}; root ${root}; }\n}\n`,
  )
  const child = start('nginx', NGINX, ['-c', conf], { stdio: 'ignore' })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const r = await shell('nginx ready?', `curl -sf -o /dev/null ${q(url + '/')} || curl -s -o /dev/null -w '%{http_code}' ${q(url + '/')} | grep -q 40`, 2000)
    if (r.code === 0) return { child, url }
    if (child.exitCode !== null) break
    await new Promise((r2) => setTimeout(r2, 50))
  }
  await stop(child)
  return { skipped: 'nginx did not start' }
}

const FSSPEC = String.raw`
import random, sys, time
from fsspec.implementations.http import HTTPFileSystem
url, path, reads = sys.argv[1], sys.argv[2], int(sys.argv[3])
fs = HTTPFileSystem()
size = fs.size(url)
rnd = random.Random(1)
n = 5 * 2**20
spans = [(a, min(size, a + n)) for a in (rnd.randrange(max(1, size - n)) for _ in range(reads))]
local = open(path, 'rb')
took = 0.0
got = 0
for a, b in spans:
    t0 = time.perf_counter()
    data = fs.cat_file(url, start=a, end=b)
    took += time.perf_counter() - t0
    local.seek(a)
    if data != local.read(b - a):
        sys.exit('range %d-%d differs from the file' % (a, b))
    got += len(data)
print(got / took / 1e9)
`

/** curl GETs and fsspec random reads of the big file through `url` (the gateway or nginx). */
export function httpContenders(ds: Dataset, targets: { key: string; label: string; url: string }[], timeoutMs: number, python: string | null): Contender[] {
  const abs = join(ds.root, ds.big.path)
  const out: Contender[] = []
  for (const { key, label, url } of targets) {
    const file = `${url}/${ds.big.path.split('/').map(encodeURIComponent).join('/')}`
    out.push({
      key: `curl-${key}`,
      label: `curl GET, ${label}`,
      unit: 'GB/s',
      run: async () => {
        const r = await shell(`curl ${label}`, `curl -sS -f -o /dev/null -w '%{size_download}' ${q(file)}`, timeoutMs, true)
        if (r.code !== 0 || Number(r.stdout.toString()) !== ds.big.size) throw new BenchError(`curl ${label}: exit ${r.code}, ${r.stdout} bytes: ${r.stderr}`)
        return ds.big.size / r.ms / 1e6
      },
      // The timed runs end in /dev/null; the bytes are compared with the file once.
      warm: async () => {
        const r = await shell(`curl ${label} (check)`, `curl -sS -f ${q(file)} | cmp - ${q(abs)}`, timeoutMs)
        if (r.code !== 0) throw new BenchError(`curl ${label}: the body differs from the file: ${r.stderr}`)
        return 'bytes checked'
      },
    })
    if (python) {
      out.push({
        key: `fsspec-${key}`,
        label: `fsspec random 5 MiB reads, ${label}`,
        unit: 'GB/s',
        run: async () => {
          const r = await shell(`fsspec ${label}`, `${q(python)} -c ${q(FSSPEC)} ${q(file)} ${q(abs)} 40`, timeoutMs, true, 'bash')
          if (r.code !== 0) throw new BenchError(`fsspec ${label}: ${r.stderr.trim()}`)
          return Number(r.stdout.toString())
        },
      })
    }
  }
  return out
}

/** A Python that imports fsspec and aiohttp, or null. */
export function fsspecPython(): string | null {
  for (const py of ['/usr/bin/python3', 'python3']) {
    try {
      execFileSync(py, ['-c', 'import fsspec, aiohttp'], { stdio: 'ignore', timeout: 30_000 })
      return py
    } catch {
      // next
    }
  }
  return null
}
