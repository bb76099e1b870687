/**
 * The progress display of `warm`: a bar (bytes, files, rate, ETA) when stderr
 * is a terminal, nothing until the summary line otherwise.
 */
import type { WarmResult } from '../client/client.js'
import { size } from './format.js'

export interface WarmDisplay {
  update(p: WarmResult): void
  stop(): void
}

export async function warmDisplay(stream: NodeJS.WriteStream = process.stderr): Promise<WarmDisplay> {
  if (!stream.isTTY) return { update() {}, stop() {} }
  // Loaded only on a terminal: the client must start fast in scripts.
  const { SingleBar, Presets } = await import('cli-progress')
  const bar = new SingleBar(
    {
      stream,
      format: 'warming {bar} {percentage}% | {done} of {all} | {files}/{totalFiles} files | {rate}/s | ETA {eta_formatted}',
      hideCursor: true,
      etaBuffer: 20,
    },
    Presets.shades_classic,
  )
  const started = Date.now()
  let running = false
  const fields = (p: WarmResult) => ({
    done: size(p.bytes),
    all: size(p.totalBytes),
    files: p.files,
    totalFiles: p.totalFiles,
    rate: size(p.bytes / Math.max(0.001, (Date.now() - started) / 1000)),
  })
  return {
    update(p) {
      if (!running) {
        bar.start(Math.max(1, p.totalBytes), p.bytes, fields(p))
        running = true
      }
      // A list's totals grow as the server reaches its paths.
      bar.setTotal(Math.max(1, p.totalBytes))
      bar.update(p.bytes, fields(p))
    },
    stop() {
      if (running) bar.stop()
    },
  }
}
