/**
 * The client reads replies into one reused receive buffer. readChunks hands
 * each verified piece on from there, readFile copies pages into the one
 * Buffer it returns, read() streams copies: whatever the consumer keeps must
 * never change when later bytes arrive.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { writeFile } from '../helpers/fixtures.js'
import { connectTo, startServer } from '../helpers/server.js'

const MiB = 1024 * 1024

describe('readChunks', () => {
  it('hands on exactly the bytes of the file, in order, and resolves with START', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 64 * 1024 })
    const data = writeFile(root, 'f.bin', 5 * MiB + 123)
    const client = await connectTo(t, url)
    const copies: Buffer[] = []
    const info = await client.readChunks('f.bin', (chunk) => copies.push(Buffer.from(chunk)))
    assert.equal(info.length, data.length)
    assert.ok(copies.length > 1)
    assert.ok(Buffer.concat(copies).equals(data))
  })

  it('hands on views of reused memory: a piece kept without a copy is overwritten later', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 64 * 1024 })
    const data = writeFile(root, 'f.bin', 8 * MiB)
    const client = await connectTo(t, url)
    const kept: Buffer[] = []
    const copies: Buffer[] = []
    await client.readChunks('f.bin', (chunk) => {
      kept.push(chunk)
      copies.push(Buffer.from(chunk))
    })
    assert.ok(Buffer.concat(copies).equals(data))
    // The documented contract, observed: the memory behind early pieces was reused.
    assert.ok(kept.some((k, i) => !k.equals(copies[i])), 'some kept view changed after its call')
  })

  it('a range, and errors as rejections (ENOENT, ERANGE)', async (t) => {
    const { url, root } = await startServer(t)
    const data = writeFile(root, 'f.bin', 300_000)
    const client = await connectTo(t, url)
    const copies: Buffer[] = []
    await client.readChunks('f.bin', (c) => copies.push(Buffer.from(c)), { offset: 1000, length: 200_000 })
    assert.ok(Buffer.concat(copies).equals(data.subarray(1000, 201_000)))
    await assert.rejects(client.readChunks('nope.bin', () => {}), { code: 'ENOENT' })
    await assert.rejects(client.readChunks('f.bin', () => {}, { offset: 300_001 }), { code: 'ERANGE' })
  })

  it('stops with the error onChunk throws, stops the server, and the connection goes on', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 64 * 1024 })
    const data = writeFile(root, 'f.bin', 16 * MiB)
    const client = await connectTo(t, url)
    let calls = 0
    await assert.rejects(
      client.readChunks('f.bin', () => {
        if (++calls === 3) throw Object.assign(new Error('stdout closed'), { code: 'EPIPE' })
      }),
      { code: 'EPIPE' },
    )
    // The request is forgotten at once (and cancelled on the server); the connection serves on.
    assert.equal(client.pending, 0)
    assert.ok((await client.readFile('f.bin')).equals(data))
  })
})

describe('what consumers keep stays intact while later bytes arrive', () => {
  it('readFile and readMany results, and read() chunks held until the end', async (t) => {
    const { url, root } = await startServer(t, { pageSize: 16 * 1024 })
    const files = Array.from({ length: 12 }, (_, i) => writeFile(root, `f${i}.bin`, 50_000 + i * 40_000))
    const client = await connectTo(t, url)
    const got: Buffer[] = []
    for await (const { data } of client.readMany(files.map((_, i) => `f${i}.bin`), { inFlight: 4 })) got.push(data)
    const held: Buffer[] = []
    for await (const c of client.read('f11.bin')) held.push(c as Buffer)
    // Checked only now, after every later read reused the receive buffer.
    got.forEach((d, i) => assert.ok(d.equals(files[i]), `file ${i}`))
    assert.ok(Buffer.concat(held).equals(files[11]))
  })
})
