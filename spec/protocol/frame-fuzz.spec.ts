/**
 * Seeded fuzz of the frame parsers (FrameDecoder, strict and resyncing, and
 * the resyncing deframer): random buffers and damaged frame streams. None
 * throws, and none hands on a frame that was not sent. Replay a run with
 * FUZZ_SEED=<seed> (spec/helpers/fuzz.ts).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { HEADER_SIZE } from '../../lib/protocol/constants.js'
import { FrameDecoder } from '../../lib/protocol/decoder.js'
import type { ReceivedFrame } from '../../lib/protocol/frame.js'
import { createDeframer, type Deframed } from '../../lib/stages/deframer.js'
import { SEED, Rng, watchProcess, within, frameBytes, countBy, show } from '../helpers/fuzz.js'

interface Known {
  frame: ReceivedFrame
  /** Byte position of the frame in the stream, and its size there. */
  pos: number
  size: number
  /** Inside another frame's payload. */
  inner: boolean
}

/** A stream of frames with distinct seqs, sometimes frames inside payloads, sometimes magic bytes sprinkled in. */
function frameStream(r: Rng): { bytes: Buffer; known: Map<number, Known>; top: Known[] } {
  const known = new Map<number, Known>()
  const top: Known[] = []
  const parts: Buffer[] = []
  let nextSeq = 0
  /** A frame's bytes; `inner` is a frame placed in its payload, `innerAt` where (from the frame's start). */
  const make = (isInner: boolean): { bytes: Buffer; k: Known; inner?: { bytes: Buffer; k: Known }; innerAt: number } => {
    const checksum = r.pick([1, 1, 2, 0])
    let payload: Buffer = r.bytes(r.pick([0, 1, 3, 4, 23, 24, 25, 100, r.int(2000), r.int(2000), r.int(20_000), r.chance(0.1) ? 70_000 : 10]))
    if (r.chance(0.2)) for (let i = r.range(1, 5); i > 0 && payload.length > 1; i--) payload.writeUInt16BE(0xc550, r.int(payload.length - 1))
    let inner: { bytes: Buffer; k: Known } | undefined
    let at = 0
    if (!isInner && checksum !== 0 && r.chance(0.1)) {
      inner = make(true)
      at = r.int(payload.length + 1)
      payload = Buffer.concat([payload.subarray(0, at), inner.bytes, payload.subarray(at)])
    }
    const frame: ReceivedFrame = { type: r.range(0, 255), id: r.int(2 ** 32), seq: nextSeq++, epoch: r.int(256), checksum, payload, intact: true }
    const bytes = frameBytes(frame, checksum)
    const k: Known = { frame, pos: 0, size: bytes.length, inner: isInner }
    known.set(frame.seq, k)
    return { bytes, k, inner, innerAt: bytes.length - payload.length + at }
  }
  let pos = 0
  for (let n = r.range(1, 30); n > 0; n--) {
    const { bytes, k, inner, innerAt } = make(false)
    k.pos = pos
    if (inner) inner.k.pos = pos + innerAt
    top.push(k)
    parts.push(bytes)
    pos += bytes.length
  }
  return { bytes: Buffer.concat(parts), known, top }
}

type Damage = { kind: 'none' } | { kind: 'flips'; at: number[] } | { kind: 'truncate'; at: number } | { kind: 'runs'; desc: string }

function damage(r: Rng, bytes: Buffer, top: Known[]): { bytes: Buffer; damage: Damage } {
  switch (r.int(7)) {
    case 0:
      return { bytes, damage: { kind: 'none' } }
    case 1:
    case 2: {
      const out = Buffer.from(bytes)
      const at: number[] = []
      for (let n = r.range(1, 8); n > 0; n--) {
        // Half the time aim at a header.
        const p = r.chance(0.5) ? r.pick(top).pos + r.int(HEADER_SIZE) : r.int(out.length)
        out[p] ^= 1 << r.int(8)
        at.push(p)
      }
      return { bytes: out, damage: { kind: 'flips', at } }
    }
    case 3: {
      const at = r.int(bytes.length)
      return { bytes: bytes.subarray(0, at), damage: { kind: 'truncate', at } }
    }
    default: {
      const pieces: string[] = []
      let out = bytes
      for (let n = r.range(1, 4); n > 0; n--) {
        const at = r.int(out.length + 1)
        const len = r.range(1, 200)
        switch (r.int(3)) {
          case 0:
            out = Buffer.concat([out.subarray(0, at), out.subarray(at + len)])
            pieces.push(`drop ${len} at ${at}`)
            break
          case 1:
            out = Buffer.concat([out.subarray(0, at + len), out.subarray(at, at + len), out.subarray(at + len)])
            pieces.push(`duplicate ${len} at ${at}`)
            break
          default: {
            const junk = r.chance(0.5) ? Buffer.concat([Buffer.from([0xc5, 0x50, 0x01]), r.bytes(len)]) : r.bytes(len)
            out = Buffer.concat([out.subarray(0, at), junk, out.subarray(at)])
            pieces.push(`insert ${junk.length} at ${at}`)
          }
        }
      }
      return { bytes: out, damage: { kind: 'runs', desc: pieces.join(', ') } }
    }
  }
}

function chunked(r: Rng, bytes: Buffer): Buffer[] {
  const style = r.int(4)
  if (style === 0 || bytes.length === 0) return [bytes]
  // Tiny chunks only for short streams: the decoders' cost grows with the square of the chunks in one frame (see the report).
  const max = style === 1 && bytes.length <= 20_000 ? 1 : style <= 2 && bytes.length <= 200_000 ? 30 : 5000
  const chunks: Buffer[] = []
  for (let at = 0; at < bytes.length; ) {
    const n = r.range(1, max)
    chunks.push(bytes.subarray(at, at + n))
    at += n
  }
  return chunks
}

function sameFrame(got: ReceivedFrame, want: ReceivedFrame): boolean {
  return got.type === want.type && got.id === want.id && got.seq === want.seq && got.epoch === want.epoch && got.checksum === want.checksum && got.payload.equals(want.payload)
}

/** Every frame handed on as intact must be one that was encoded (a frame without a checksum: same header and size). */
function checkIntact(frames: ReceivedFrame[], known: Map<number, Known>, what: string): void {
  for (const f of frames) {
    if (!f.intact) continue
    const k = known.get(f.seq)
    assert.ok(k, `${what}: an intact frame (seq ${f.seq}, ${f.payload.length} bytes) that was never encoded`)
    if (f.checksum === 0) {
      assert.ok(f.type === k.frame.type && f.id === k.frame.id && f.checksum === 0 && f.payload.length === k.frame.payload.length, `${what}: frame ${f.seq} without checksum has the header it was encoded with`)
    } else {
      assert.ok(sameFrame(f, k.frame), `${what}: intact frame ${f.seq} is exactly the frame encoded (type ${f.type}/${k.frame.type}, id ${f.id}/${k.frame.id}, epoch ${f.epoch}/${k.frame.epoch}, ${f.payload.length}/${k.frame.payload.length} bytes)`)
    }
  }
}

function runDecoder(chunks: Buffer[], resync: boolean): { frames: ReceivedFrame[]; invalid: string[] } {
  const frames: ReceivedFrame[] = []
  const invalid: string[] = []
  const decoder = new FrameDecoder({ onFrame: (f) => frames.push(f), onInvalid: (reason) => invalid.push(reason) }, { resync })
  for (const c of chunks) decoder.write(c)
  return { frames, invalid }
}

async function runDeframer(chunks: Buffer[]): Promise<{ frames: ReceivedFrame[]; lost: number; error: Error | null }> {
  const deframer = createDeframer({ resync: true })
  const frames: ReceivedFrame[] = []
  let lost = 0
  let error: Error | null = null
  deframer.on('data', (item: Deframed) => {
    if ('lost' in item) lost++
    else frames.push(item)
  })
  const ended = new Promise<void>((resolve) => {
    deframer.on('end', resolve)
    deframer.on('error', (err) => {
      error = err
      resolve()
    })
  })
  for (const c of chunks) deframer.write(c)
  deframer.end()
  await within(ended, 5000, 'the deframer ending')
  return { frames, lost, error }
}

const PARSER_ROUNDS = 2000

describe('frame parser fuzz', () => {
  test(`FrameDecoder (strict and resync) and the resync deframer never throw and never hand on a forged frame, over ${PARSER_ROUNDS} damaged streams and random buffers (seed ${SEED})`, async (t) => {
    const uncaught = watchProcess(t)
    const r = new Rng(SEED ^ 0xdec0de)
    const tally = new Map<string, number>()
    let intactFrames = 0
    for (let round = 0; round < PARSER_ROUNDS; round++) {
      if (r.chance(0.15)) {
        // Random buffers: nothing in them is a frame.
        const b = r.chance(0.3) ? Buffer.concat([Buffer.from([0xc5, 0x50]), r.bytes(r.int(5000))]) : r.bytes(r.int(5000))
        for (const resync of [false, true]) {
          const { frames, invalid } = runDecoder(chunked(r, b), resync)
          assert.equal(frames.length, 0, `round ${round}: no frame out of random bytes (resync ${resync})`)
          assert.ok(invalid.length <= (resync ? Infinity : 1), `round ${round}: the strict decoder reports one loss and stops`)
        }
        const d = await runDeframer(chunked(r, b))
        assert.equal(d.error, null, `round ${round}: the resync deframer does not fail on random bytes`)
        assert.equal(d.frames.length, 0, `round ${round}: the deframer finds no frame in random bytes`)
        countBy(tally, 'random')
        continue
      }
      const { bytes, known, top } = frameStream(r)
      const { bytes: damaged, damage: dmg } = damage(r, bytes, top)
      countBy(tally, dmg.kind)
      const what = (mode: string) => `round ${round} (${mode}, ${top.length} frames, ${dmg.kind === 'flips' ? `flips at ${dmg.at.join(',')}` : dmg.kind === 'truncate' ? `cut at ${dmg.at}` : dmg.kind === 'runs' ? dmg.desc : 'undamaged'})`

      const strict = runDecoder(chunked(r, damaged), false)
      const hunting = runDecoder(chunked(r, damaged), true)
      const deframed = await runDeframer(chunked(r, damaged))
      assert.equal(deframed.error, null, `${what('deframer')}: the resync deframer never fails`)
      checkIntact(strict.frames, known, what('strict'))
      checkIntact(hunting.frames, known, what('resync'))
      checkIntact(deframed.frames, known, what('deframer'))
      assert.ok(strict.invalid.length <= 1, `${what('strict')}: reports a lost boundary once, then stops`)
      intactFrames += hunting.frames.filter((f) => f.intact).length

      const topSeqs = top.map((k) => k.frame.seq)
      if (dmg.kind === 'none' || dmg.kind === 'truncate') {
        // Undamaged bytes: exactly the frames that are complete, in order, all intact, nothing lost.
        const complete = top.filter((k) => dmg.kind === 'none' || k.pos + k.size <= dmg.at).map((k) => k.frame.seq)
        for (const [mode, got] of [['strict', strict.frames], ['resync', hunting.frames], ['deframer', deframed.frames]] as const) {
          assert.deepEqual(got.map((f) => f.seq), complete, `${what(mode)}: the complete frames, in order`)
          assert.ok(got.every((f) => f.intact), `${what(mode)}: all intact`)
        }
        assert.deepEqual([strict.invalid.length, hunting.invalid.length, deframed.lost], [0, 0, 0], `${what('all')}: no lost boundary in undamaged bytes`)
      } else if (dmg.kind === 'flips') {
        const touched = (k: Known) => dmg.at.some((p) => p >= k.pos && p < k.pos + k.size)
        // Frame boundaries only move when a header fails: the strict decoder sees the encoded headers, in order.
        assert.deepEqual(strict.frames.map((f) => f.seq), topSeqs.slice(0, strict.frames.length), `${what('strict')}: frames in encoded order`)
        // Hunting after a damaged header finds every frame that was left untouched.
        for (const [mode, got] of [['resync', hunting.frames], ['deframer', deframed.frames]] as const) {
          const seen = new Set(got.filter((f) => f.intact).map((f) => f.seq))
          const missed = top.filter((k) => !touched(k) && !seen.has(k.frame.seq)).map((k) => k.frame.seq)
          assert.deepEqual(missed, [], `${what(mode)}: every untouched frame recovered`)
        }
      }
    }
    t.diagnostic(`${PARSER_ROUNDS} rounds: ${show(tally)}; ${intactFrames} intact frames checked against what was encoded`)
    assert.deepEqual(uncaught, [], 'no uncaught exception or unhandled rejection')
    assert.deepEqual(uncaught.leaked, [], 'no file handle left to the garbage collector')
  })
})
