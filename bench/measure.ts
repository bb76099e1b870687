/**
 * Repeated measurements, alternating the contenders (A B C A B C …), so that
 * a slow spell of this shared machine lands on all of them alike; medians.
 */
import { BenchError, type CpuUse, elapsed, log, median, spread } from './util.js'

/** A figure, with the CPU time both sides spent per unit of work (per GB, per 1,000 files) when known. */
export interface Sample {
  value: number
  cpu?: CpuUse
  /** More figures of the same run (in `unit`), by name: each is kept as a contender of its own, keyed `KEY/NAME`. */
  also?: Record<string, number>
}

export interface Contender {
  key: string
  label: string
  unit: string
  /** One timed measurement; returns the figure (in `unit`). Throws if what it read is wrong. */
  run(): Promise<number | Sample>
  /** An untimed run before the rounds (checks, JIT and cache warm-up); defaults to run(). */
  warm?(): Promise<unknown>
}

export interface Measured {
  key: string
  label: string
  unit: string
  samples: number[]
  median: number
  spread: number
  /** Medians of the CPU time per unit of work, if the contender measured it. */
  cpu?: CpuUse
}

export interface RoundsOptions {
  /** Rounds wanted. */
  rounds: number
  /** Rounds run even past the deadline. */
  minRounds: number
  /** Elapsed seconds (since the benchmark started) after which no new round starts, once minRounds are done. */
  deadline: number
  /** Called before the warm-ups (with −1) and before each round (with its number from 0). */
  onRound?: (round: number) => void
}

export async function alternate(section: string, contenders: Contender[], opts: RoundsOptions, fmt: (v: number) => string = (v) => v.toFixed(2)): Promise<Map<string, Measured>> {
  const samples = new Map<string, number[]>(contenders.map((c) => [c.key, []]))
  const cpus = new Map<string, CpuUse[]>(contenders.map((c) => [c.key, []]))
  /** The contenders' `also` figures, as contenders of their own. */
  const extra: Contender[] = []
  opts.onRound?.(-1)
  for (const c of contenders) {
    const w = await (c.warm ? c.warm() : c.run())
    const v = typeof w === 'object' && w !== null && 'value' in w ? w.value : w
    log(`${section}: warm-up ${c.label}${typeof v === 'number' ? `: ${fmt(v)} ${c.unit}` : typeof v === 'string' ? `: ${v}` : ''}`)
  }
  let lastRound = 0
  for (let r = 0; r < opts.rounds; r++) {
    const t = elapsed()
    if (r >= opts.minRounds && t + lastRound > opts.deadline) {
      log(`${section}: stopping after ${r} rounds (time budget)`)
      break
    }
    opts.onRound?.(r)
    const figures: string[] = []
    for (const c of contenders) {
      const got = await c.run()
      const v = typeof got === 'number' ? got : got.value
      if (typeof got === 'object' && got.cpu) cpus.get(c.key)!.push(got.cpu)
      for (const [name, x] of Object.entries((typeof got === 'object' && got.also) || {})) {
        const key = `${c.key}/${name}`
        if (!Number.isFinite(x) || x <= 0) throw new BenchError(`${section}: ${c.label}: no valid ${name} figure (${x})`)
        if (!samples.has(key)) {
          samples.set(key, [])
          cpus.set(key, [])
          extra.push({ ...c, key, label: `${c.label} (${name})` })
        }
        samples.get(key)!.push(x)
      }
      if (!Number.isFinite(v) || v <= 0) throw new BenchError(`${section}: ${c.label}: no valid figure (${v})`)
      samples.get(c.key)!.push(v)
      figures.push(`${c.label} ${fmt(v)}`)
    }
    lastRound = elapsed() - t
    log(`${section} round ${r + 1}/${opts.rounds} (${lastRound.toFixed(1)} s): ${figures.join(', ')}`)
  }
  // An `also` figure must come with every sample of its contender, or its median would not match the contender's.
  for (const e of extra) {
    const parent = e.key.slice(0, e.key.lastIndexOf('/'))
    if (samples.get(e.key)!.length !== samples.get(parent)!.length) throw new BenchError(`${section}: ${e.label}: ${samples.get(e.key)!.length} samples, but ${samples.get(parent)!.length} of the figure it goes with`)
  }
  const out = new Map<string, Measured>()
  for (const c of [...contenders, ...extra]) {
    const xs = samples.get(c.key)!
    const cs = cpus.get(c.key)!
    const cpu = cs.length ? { client: median(cs.map((x) => x.client)), server: median(cs.map((x) => x.server)) } : undefined
    out.set(c.key, { key: c.key, label: c.label, unit: c.unit, samples: xs, median: median(xs), spread: spread(xs), ...(cpu ? { cpu } : {}) })
  }
  return out
}
