/**
 * Server addresses as users write them: tcp://HOST:PORT, HOST:PORT, [::1]:PORT,
 * a bare PORT (on 127.0.0.1), or unix:/path/to/socket.
 */
import { error } from './errors.js'

export type Address = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string }

export const DEFAULT_ADDRESS = 'tcp://127.0.0.1:7070'

export function parseAddress(text: string): Address {
  const s = text.trim()
  if (s.startsWith('unix:')) {
    const path = s.slice(5).replace(/^\/\/(?=\/)/, '') // accept unix:///path too
    if (path === '') throw error('EBADREQ', `address ${JSON.stringify(text)} names no socket path`)
    return { kind: 'unix', path }
  }
  const rest = s.startsWith('tcp://') ? s.slice(6) : s
  if (/^\d+$/.test(rest)) return { kind: 'tcp', host: '127.0.0.1', port: port(rest, text) }
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(rest) ?? /^([^:[\]/]+):(\d+)$/.exec(rest)
  if (!m) throw error('EBADREQ', `cannot parse address ${JSON.stringify(text)}; use tcp://HOST:PORT, HOST:PORT or unix:/path`)
  return { kind: 'tcp', host: m[1], port: port(m[2], text) }
}

function port(digits: string, text: string): number {
  const n = Number(digits)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw error('EBADREQ', `port out of range in ${JSON.stringify(text)}`)
  return n
}

export function formatAddress(a: Address): string {
  if (a.kind === 'unix') return `unix:${a.path}`
  return a.host.includes(':') ? `tcp://[${a.host}]:${a.port}` : `tcp://${a.host}:${a.port}`
}
