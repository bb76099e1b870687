/** A real server on a loopback port (or unix socket), closed when the test ends. */
import type { TestContext } from 'node:test'
import { CacheServer, type ServerOptions } from '../../lib/server/server.js'
import { type Client, connect } from '../../lib/client/client.js'
import { tempDir } from './fixtures.js'

export interface Running {
  server: CacheServer
  url: string
  root: string
}

export async function startServer(
  t: Pick<TestContext, 'after'>,
  opts: Partial<ServerOptions> & { listen?: string } = {},
): Promise<Running> {
  const root = opts.root ?? tempDir(t)
  // Specs write their files just before they read them: they do not wait for the files to
  // settle (settle.ts) unless they are about that, and say so with their own `settle`.
  const server = await CacheServer.create({ settle: 0, ...opts, root })
  const url = await server.listen(opts.listen ?? 'tcp://127.0.0.1:0')
  t.after(() => server.close())
  return { server, url, root }
}

export async function connectTo(t: Pick<TestContext, 'after'>, url: string): Promise<Client> {
  const client = await connect(url)
  t.after(() => client.close())
  return client
}
