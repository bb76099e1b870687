/**
 * Shutting down, from a client's side: a client whose server closed still
 * closes. (close({grace}) is in spec/server/server.spec.ts; the server
 * command's signals in spec/cli/server.spec.ts.)
 */
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { connect } from '../../lib/client/client.js'
import { writeFile } from '../helpers/fixtures.js'
import { startServer } from '../helpers/server.js'
import { within } from '../helpers/wait.js'

const KiB = 1024
const MiB = 1024 * KiB

describe('the client once the server has closed', () => {
  test(
    'client.close() resolves even while a read holds frames its consumer has not taken',
    async (t) => {
      const { server, url, root } = await startServer(t)
      writeFile(root, 'mid.bin', 2 * MiB)
      const client = await connect(url)
      const stream = client.read('mid.bin', { highWaterMark: 16 * KiB }) // never consumed
      stream.on('error', () => {})
      t.after(() => void stream.destroy()) // unblocks the client pipeline whatever happens here
      assert.ok(await within(once(stream, 'info'), 5000), 'the read started')
      await sleep(100) // let the rest of the response reach the client's buffers
      await server.close()
      assert.ok(await within(client.close(), 2000), 'client.close() resolved')
    },
  )
})
