/** The `--redis` seed list: comma-separated redis:// URLs. */
import { error } from '../errors.js'

export interface RedisNode {
  host: string
  port: number
  username?: string
  password?: string
}

export const DEFAULT_REDIS_PORT = 6379

/** Parse `redis://[user:password@]host[:port]` URLs, given as one comma-separated string or many. */
export function parseRedisNodes(spec: string | readonly string[]): RedisNode[] {
  const urls = (typeof spec === 'string' ? [spec] : spec).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean)
  if (urls.length === 0) throw error('EBADREQ', 'no Redis URL given: expected redis://HOST:PORT[,redis://HOST:PORT...]')
  return urls.map((url) => {
    let u: URL
    try {
      u = new URL(url)
    } catch {
      throw error('EBADREQ', `not a Redis URL: ${url} (expected redis://HOST:PORT)`)
    }
    if (u.protocol !== 'redis:') throw error('EBADREQ', `unsupported Redis URL scheme ${u.protocol} in ${url}: only redis:// is supported`)
    if (!u.hostname) throw error('EBADREQ', `no host in Redis URL ${url}`)
    if (u.pathname !== '' && u.pathname !== '/' && u.pathname !== '/0') throw error('EBADREQ', `Redis URL ${url} names a database: the shared tier uses database 0 (a cluster has no other)`)
    const node: RedisNode = { host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port ? Number(u.port) : DEFAULT_REDIS_PORT }
    if (u.username) node.username = decodeURIComponent(u.username)
    if (u.password) node.password = decodeURIComponent(u.password)
    return node
  })
}
