/** The results: rows (figure, baseline, ratio), targets with PASS/MISS, as aligned text and as JSON. */
import type { Measured } from './measure.js'

export interface Row {
  section: string
  label: string
  value: number
  unit: string
  /** Timed repeats behind the median. */
  n: number
  /** (max − min) / median of the repeats. */
  spread: number
  baseline?: { label: string; value: number }
  /** value / baseline. */
  ratio?: number
  /** Extra words (differences, derived figures). */
  note?: string
  /** Median CPU ms spent per unit of work (GB, 1,000 files) by the client (this process) and the server process. */
  cpu?: { client: number; server: number; per: string }
}

export interface Target {
  name: string
  measured: string
  required: string
  pass: boolean
  /** How far over (+) or under (−) the requirement, in words. */
  margin: string
  /** The largest spread of the figures compared: at NOISY or more, the verdict is marked as shaky. */
  spread: number
}

/** Spread ((max − min) / median) at which a target's verdict is marked: the machine was busy meanwhile. */
export const NOISY = 0.5

/** A row from a measured figure, compared with another measured figure of the same run. */
export function row(section: string, m: Measured, base?: Measured, note?: string): Row {
  return {
    section,
    label: m.label,
    value: m.median,
    unit: m.unit,
    n: m.samples.length,
    spread: m.spread,
    ...(base ? { baseline: { label: base.label, value: base.median }, ratio: m.median / base.median } : {}),
    ...(note ? { note } : {}),
    ...(m.cpu ? { cpu: { ...m.cpu, per: m.unit === 'GB/s' ? 'GB' : '1k files' } } : {}),
  }
}

function cpuCell(r: Row): string {
  if (!r.cpu) return ''
  const server = Number.isNaN(r.cpu.server) ? '' : ` + ${r.cpu.server.toFixed(0)}`
  // A client in a process of its own is not measured: the server's alone.
  if (Number.isNaN(r.cpu.client)) return `server ${r.cpu.server.toFixed(0)} ms/${r.cpu.per}`
  return `${r.cpu.client.toFixed(0)}${server} ms/${r.cpu.per}`
}

/** A "≥ k × baseline" target. */
export function ratioTarget(name: string, m: Measured, base: Measured, atLeast: number): Target {
  const ratio = m.median / base.median
  const pass = ratio >= atLeast
  return {
    name,
    measured: `${ratio.toFixed(2)}× (${fig(m.median)} vs ${fig(base.median)} ${m.unit})`,
    required: `≥ ${atLeast.toFixed(1)}×`,
    pass,
    margin: pass ? `+${((ratio / atLeast - 1) * 100).toFixed(0)}%` : `misses by ${((1 - ratio / atLeast) * 100).toFixed(0)}%`,
    spread: Math.max(m.spread, base.spread),
  }
}

export function fig(v: number): string {
  if (!Number.isFinite(v)) return String(v)
  const a = Math.abs(v)
  if (a >= 1000) return Math.round(v).toLocaleString('en-US')
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

function pad(cells: string[][], rightAligned: Set<number>): string[] {
  const widths: number[] = []
  for (const r of cells) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)))
  return cells.map((r) =>
    r
      .map((c, i) => {
        const fill = ' '.repeat(widths[i]! - [...c].length)
        return rightAligned.has(i) ? fill + c : c + fill
      })
      .join('  ')
      .trimEnd(),
  )
}

export function formatTables(rows: Row[], targets: Target[]): string {
  const out: string[] = []
  const head = ['figure', 'value', 'unit', 'n', 'spread', 'baseline', 'base value', 'ratio', 'cpu client + server', 'note']
  const cells: string[][] = [head]
  let section = ''
  for (const r of rows) {
    if (r.section !== section) {
      section = r.section
      cells.push([`[${section}]`, '', '', '', '', '', '', '', '', ''])
    }
    cells.push([
      `  ${r.label}`,
      fig(r.value),
      r.unit,
      String(r.n),
      r.n > 1 ? `${(r.spread * 100).toFixed(0)}%` : '',
      r.baseline?.label ?? '',
      r.baseline ? fig(r.baseline.value) : '',
      r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '',
      cpuCell(r),
      r.note ?? '',
    ])
  }
  const lines = pad(cells, new Set([1, 3, 4, 6, 7, 8]))
  out.push(lines[0]!, '-'.repeat(Math.max(...lines.map((l) => [...l].length))), ...lines.slice(1))
  out.push('')
  const mark = (t: Target) => (t.spread >= NOISY ? '*' : '')
  const tcells = [['target', 'measured', 'required', 'verdict', 'margin'], ...targets.map((t) => [t.name, t.measured, t.required, (t.pass ? 'PASS' : 'MISS') + mark(t), t.margin])]
  const tlines = pad(tcells, new Set())
  out.push(tlines[0]!, '-'.repeat(Math.max(...tlines.map((l) => [...l].length))), ...tlines.slice(1))
  const passed = targets.filter((t) => t.pass).length
  out.push('', `${passed} of ${targets.length} targets met`)
  const shaky = targets.filter((t) => t.spread >= NOISY).length
  if (shaky) out.push(`* ${shaky} verdict${shaky === 1 ? '' : 's'} on figures that spread by ${NOISY * 100}% or more over their repeats: the machine was busy meanwhile; rerun before trusting ${shaky === 1 ? 'it' : 'them'}`)
  return out.join('\n')
}
