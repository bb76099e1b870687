/**
 * The cache policies' hit ratios on the simulated workloads of the specs
 * (spec/helpers/cache-simulation.ts), as a table: `npm run bench:policies`.
 */
import { POLICIES } from '../lib/cache/policy.js'
import { simulate, standardWorkloads } from '../spec/helpers/cache-simulation.js'

const rows = standardWorkloads().map((w) => [w.name, ...POLICIES.map((p) => simulate(p, w).warm.toFixed(3))])
const header = ['workload (hit ratio after round 1)', ...POLICIES]
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
const line = (cells: string[]): string => cells.map((c, i) => (i ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ')
console.log([line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'))
