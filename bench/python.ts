/**
 * The Python client as a contender: bench/python-read.py reads through
 * the cacheserv_client package (clients/python) and reports bytes, the page xor and the
 * time it measured itself (interpreter start-up excluded, as for the Node rows).
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { FileInfo } from './data.js'
import { BenchError, withTimeout } from './util.js'

const SCRIPT = fileURLToPath(new URL('../../bench/python-read.py', import.meta.url))

function python(args: string[], input: string, timeoutMs: number, what: string): Promise<unknown> {
  const child = spawn('python3', [SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (c: Buffer) => (out += c))
  child.stderr.on('data', (c: Buffer) => (err += c))
  child.stdin.end(input)
  const done = new Promise<unknown>((resolve, reject) => {
    child.on('error', reject)
    child.on('close', (code) => {
      if (code !== 0) return reject(new BenchError(`${what}: python exited ${code}: ${err.trim()}`))
      try {
        resolve(JSON.parse(out))
      } catch {
        reject(new BenchError(`${what}: unreadable output: ${out.slice(0, 200)}`))
      }
    })
  })
  return withTimeout(done, timeoutMs, what).finally(() => child.kill('SIGKILL'))
}

/** Stream one big file; returns GB/s after checking bytes and xor. */
export async function pythonBig(url: string, file: FileInfo, timeoutMs: number, what: string): Promise<number> {
  const r = (await python(['big', url, file.path], '', timeoutMs, what)) as { bytes: number; xor: number; ms: number }
  if (r.bytes !== file.size || r.xor !== file.xor) throw new BenchError(`${what}: got ${r.bytes} bytes (xor ${r.xor}), expected ${file.size} (xor ${file.xor})`)
  return r.bytes / r.ms / 1e6
}

/** Read many files with read_many; returns files/s after checking each one. */
export async function pythonMany(url: string, files: readonly FileInfo[], inFlight: number, timeoutMs: number, what: string): Promise<number> {
  const r = (await python(['many', url, String(inFlight)], files.map((f) => f.path).join('\n'), timeoutMs, what)) as { files: number; ms: number; checks: [string, number, number][] }
  if (r.files !== files.length) throw new BenchError(`${what}: got ${r.files} files, expected ${files.length}`)
  r.checks.forEach(([path, size, x], i) => {
    const want = files[i]!
    if (path !== want.path || size !== want.size || x !== want.xor) throw new BenchError(`${what}: ${path}: got ${size} bytes (xor ${x}), expected ${want.size} (xor ${want.xor})`)
  })
  return (files.length / r.ms) * 1000
}
