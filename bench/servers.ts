/** Starting the servers the benchmark measures against, each its own process. */
import type { ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BareAddress } from './bare.js'
import type { Dataset } from './data.js'
import { startServer } from './procs.js'
import { BenchError } from './util.js'

export const SERVER_BIN = fileURLToPath(new URL('../../dist/bin/cacheserv-pipe.js', import.meta.url))
export const CLIENT_BIN = fileURLToPath(new URL('../../dist/bin/cacheserv-pipe-client.cjs', import.meta.url))
const PRODUCT_SERVER = fileURLToPath(new URL('./product-server.js', import.meta.url))
const BARE_SERVER = fileURLToPath(new URL('./bare-server.js', import.meta.url))

const START_TIMEOUT = 60_000

/** The server bin's shebang, `#!/usr/bin/env -S [NAME=VALUE ...] node [FLAGS]`, split into its parts. */
function shebang(): { env: Record<string, string>; flags: string[] } {
  const first = readFileSync(SERVER_BIN, 'utf8').split('\n', 1)[0] ?? ''
  const m = /^#!\S*env -S ((?:\S+=\S* +)*)node((?: +-\S+)*)$/.exec(first)
  if (!m) throw new BenchError(`cannot read the server bin's shebang (env -S [NAME=VALUE ...] node [FLAGS]): ${first}`)
  const env = Object.fromEntries(m[1]!.trim().split(/\s+/).filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
  return { env, flags: m[2]!.trim().split(/\s+/).filter(Boolean) }
}

/** The node flags in the server bin's shebang, applied to our server processes too. */
export function serverNodeFlags(): string[] {
  return shebang().flags
}

/** The environment the server bin's shebang sets (malloc settings), applied to our server processes too. */
export function serverEnv(): Record<string, string> {
  return shebang().env
}

export interface ProductServer {
  child: ChildProcess
  tcp: string
  unix: string
  /** Its HTTP gateway, http://127.0.0.1:PORT. */
  http: string
}

export async function startProduct(ds: Dataset, cacheBytes: number, name = 'product'): Promise<ProductServer> {
  const { child, line } = await startServer(`${name} server`, process.execPath, [...serverNodeFlags(), PRODUCT_SERVER, ds.root, String(cacheBytes), join(ds.dir, `${name}.sock`)], START_TIMEOUT, serverEnv())
  const { tcp, unix, http } = JSON.parse(line) as { tcp: string; unix: string; http: string }
  return { child, tcp, unix, http }
}

export interface BareServer {
  child: ChildProcess
  tcp: BareAddress
  unix: BareAddress
  bytes: number
}

export async function startBare(ds: Dataset): Promise<BareServer> {
  const { child, line } = await startServer('bare server', process.execPath, [...serverNodeFlags(), BARE_SERVER, ds.manifestPath, join(ds.dir, 'bare.sock')], START_TIMEOUT, serverEnv())
  const { port, unix, bytes } = JSON.parse(line) as { port: number; unix: string; bytes: number }
  return { child, tcp: { kind: 'tcp', port }, unix: { kind: 'unix', path: unix }, bytes }
}

/** The real `cacheserv-pipe` bin, executed directly so its shebang flags apply; `extra` are more of its flags. */
export async function startBin(root: string, cacheBytes: number, extra: string[] = [], name = 'cacheserv-pipe (bin)'): Promise<{ child: ChildProcess; url: string }> {
  const { child, line } = await startServer(name, SERVER_BIN, ['--root', root, '--port', '0', '--cache-size', String(cacheBytes), ...extra], START_TIMEOUT)
  const m = /listening on (\S+)/.exec(line)
  if (!m) throw new BenchError(`cacheserv-pipe printed no address: ${line}`)
  return { child, url: m[1]! }
}

/** VmRSS of a process, bytes. */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (!m) throw new BenchError(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}
