/**
 * The command table: every op PROTOCOL.md names is dispatched and no other;
 * auth, cancel and nack act on the connection at once; only write takes the
 * client's frames; a command marked for heartbeats says "still working"
 * (an empty PROGRESS) while it runs silent, and write, never NACKed, does not.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, test } from 'node:test'
import { isControl } from '../../lib/commands/context.js'
import { commands } from '../../lib/commands/index.js'
import { checksumId } from '../../lib/protocol/checksum.js'
import { FrameType } from '../../lib/protocol/constants.js'
import { encodeFrame } from '../../lib/protocol/frame.js'
import { writeFile } from '../helpers/fixtures.js'
import { json, rawPeer } from '../helpers/raw.js'
import { startServer } from '../helpers/server.js'

const PROTOCOL = readFileSync(fileURLToPath(new URL('../../../PROTOCOL.md', import.meta.url)), 'utf8')

/** The ops of the first table under a PROTOCOL.md heading: its rows' first cells. */
function opsUnder(heading: string): string[] {
  const section = PROTOCOL.slice(PROTOCOL.indexOf(`\n${heading}\n`))
  const table = section.slice(section.indexOf('\n| op |'))
  const rows = table.slice(1, table.indexOf('\n\n')).split('\n').slice(2)
  return rows.map((row) => /^\| `([a-z]+)` \|/.exec(row)![1])
}

describe('the command table', () => {
  test('dispatches exactly the ops PROTOCOL.md names: its commands and its control messages', () => {
    const documented = [...opsUnder('### Commands'), ...opsUnder('### Control messages')]
    assert.ok(documented.includes('read') && documented.includes('nack'), `read the tables: ${documented.join(' ')}`)
    assert.deepEqual([...commands.keys()].sort(), documented.sort())
  })

  test('auth, cancel and nack act on the connection (no job of their own); only write takes the client\'s frames', () => {
    const control = [...commands].filter(([, entry]) => isControl(entry)).map(([op]) => op)
    assert.deepEqual(control.sort(), ['auth', 'cancel', 'nack'])
    const input = [...commands].filter(([, entry]) => !isControl(entry) && entry.input).map(([op]) => op)
    assert.deepEqual(input, ['write'])
  })
})

describe('heartbeats', () => {
  test('a pin loading for longer than the heartbeat sends empty PROGRESS frames before its RESULT', async (t) => {
    const { url, root } = await startServer(t, { cacheSize: 128 * 1024 * 1024, heartbeat: 2 })
    for (let i = 0; i < 32; i++) writeFile(root, `big/${i}.bin`, 1024 * 1024)
    const peer = await rawPeer(t, url)
    peer.send({ id: 1, op: 'pin', path: 'big' })
    const end = await peer.done(1)
    assert.equal(end.type, FrameType.RESULT)
    const progress = peer.frames.filter((f) => f.id === 1 && f.type === FrameType.PROGRESS)
    assert.ok(progress.length > 0, 'no heartbeat in a pin of 32 MiB')
    assert.ok(progress.every((f) => f.payload.toString() === '{}'))
    assert.deepEqual(peer.frames.filter((f) => f.id === 1).map((f) => f.seq), peer.frames.filter((f) => f.id === 1).map((_, i) => i), 'each takes its seq')
  })

  test('a write waiting for its frames sends none', async (t) => {
    const { url, root } = await startServer(t, { writable: true, heartbeat: 2 })
    const peer = await rawPeer(t, url)
    const data = randomBytes(5000)
    peer.send({ id: 1, op: 'write', path: 'up.bin' })
    await sleep(100) // fifty heartbeats' time
    peer.socket.write(Buffer.concat(encodeFrame({ type: FrameType.DATA, id: 1, seq: 1, payload: data }, checksumId('crc32'))))
    peer.socket.write(Buffer.concat(encodeFrame({ type: FrameType.END, id: 1, seq: 2, payload: Buffer.from(JSON.stringify({ length: data.length })) }, checksumId('crc32'))))
    const end = await peer.done(1)
    assert.deepEqual(json(end), { path: 'up.bin', size: data.length })
    assert.deepEqual(peer.frames.filter((f) => f.id === 1).map((f) => f.type), [FrameType.RESULT])
    assert.ok(readFileSync(`${root}/up.bin`).equals(data))
  })
})
