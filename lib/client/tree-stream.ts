/**
 * The receiving end of a streamed `tree`: its DATA is a JSON object per file,
 * each on its own line. Lines are parsed a batch at a time (one JSON.parse
 * per arrival, not per file), and the connection is held while the consumer
 * has more than HIGH_WATER files still to take.
 */
import { StringDecoder } from 'node:string_decoder'
import { error } from '../errors.js'
import type { ReadSink } from './read-receiver.js'
import type { TreeFile } from './types.js'

/** Files parsed and not yet taken past which the connection is held. */
const HIGH_WATER = 65_536

/** Lines of a stream of files, carried across the arrivals that cut them. */
export class TreeLines {
  #decoder = new StringDecoder('utf8')
  #rest = ''

  /** The files whose lines `bytes` completes. */
  push(bytes: Buffer): TreeFile[] {
    const text = this.#rest + this.#decoder.write(bytes)
    const last = text.lastIndexOf('\n')
    if (last < 0) {
      this.#rest = text
      return []
    }
    this.#rest = text.slice(last + 1)
    let files: unknown
    try {
      files = JSON.parse(`[${text.slice(0, last).replaceAll('\n', ',')}]`)
    } catch {
      throw error('EPROTO', 'tree: a line of the stream is not JSON')
    }
    for (const f of files as TreeFile[]) {
      if (typeof f?.path !== 'string' || typeof f.size !== 'number') throw error('EPROTO', 'tree: a line without a path and a size')
    }
    return files as TreeFile[]
  }

  /** The stream ended after a whole line. */
  get atBoundary(): boolean {
    return this.#rest === '' && this.#decoder.end() === ''
  }
}

/**
 * The files of one streamed tree request, as `open` starts it with a sink;
 * returning early releases the request.
 */
export async function* treeFiles(open: (sink: ReadSink) => { release(): void }): AsyncGenerator<TreeFile, void, void> {
  const lines = new TreeLines()
  const batches: TreeFile[][] = []
  let queued = 0
  let ended = false as boolean
  let failure = null as Error | null
  let held = null as (() => void) | null
  let wake: (() => void) | null = null
  const signal = () => {
    wake?.()
    wake = null
  }
  const request = open({
    info: () => {},
    data: (views, resume) => {
      for (const v of views) {
        const files = lines.push(v)
        if (files.length === 0) continue
        batches.push(files)
        queued += files.length
      }
      signal()
      if (queued < HIGH_WATER) return true
      held = resume
      return false
    },
    end: () => {
      if (!lines.atBoundary) failure = error('EPROTO', 'tree: the stream ended inside a line')
      ended = true
      signal()
    },
    fail: (err) => {
      failure = err
      signal()
    },
  })
  try {
    for (;;) {
      const batch = batches.shift()
      if (batch) {
        queued -= batch.length
        if (held && queued < HIGH_WATER / 2) {
          const resume = held
          held = null
          resume()
        }
        yield* batch
        continue
      }
      if (failure) throw failure
      if (ended) return
      await new Promise<void>((resolve) => (wake = resolve))
    }
  } finally {
    if (!ended || failure) request.release()
    // The connection is shared: one this stream held must go on, however the stream is left.
    const resume = held
    held = null
    resume?.()
  }
}
