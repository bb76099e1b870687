/**
 * Two "hosts" on one machine: a network namespace for the server, joined to
 * the root namespace (the client's) by a veth pair in a private /30, the
 * link shaped in both directions with tbf (and, when asked, delayed with
 * netem). Needs root and iproute2; where namespaces cannot be made, makeLink
 * says why instead of throwing, so callers can skip.
 */
import { execFile, spawnSync } from 'node:child_process'

export interface Link {
  /** The server host's namespace. */
  serverNs: string
  /** The address of the veth end inside serverNs. */
  serverIp: string
  /** The address of the veth end in the root namespace. */
  clientIp: string
  /** `argv` run inside serverNs. */
  exec(argv: string[]): string[]
  /** Delete the veth pair and the namespace; safe to call again. */
  remove(): Promise<void>
}

export interface LinkOptions {
  /** tbf rate of each direction, as tc writes it ('1gbit', '500mbit'); unshaped when absent. */
  rate?: string
  /** One-way delay added by netem on each end, ms. */
  delayMs?: number
}

/** Failures that mean this machine (or user) cannot make the link, not that the helper is wrong. */
const UNAVAILABLE = /Operation not permitted|Permission denied|EPERM|EACCES|not supported|Unknown device type|qdisc kind is unknown|Unknown qdisc/i
const STEP_TIMEOUT = 10_000
/** 10.231.0.0/16 cut into /30s: 16384 links. */
const SUBNETS = 16384

/** Links made by this process, so two in one process get different names and subnets. */
let made = 0

class Unavailable extends Error {}

function run(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(argv[0]!, argv.slice(1), { timeout: STEP_TIMEOUT }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout)
      const code = (err as NodeJS.ErrnoException).code
      const why = `${argv.join(' ')}: ${stderr.trim() || err.message}`
      reject(code === 'ENOENT' ? new Unavailable(`no ${argv[0]} (iproute2) on PATH`) : UNAVAILABLE.test(why) ? new Unavailable(why) : new Error(why))
    })
  })
}

/** A /30 in 10.231/16 that no interface of the root namespace has yet, starting from one derived from the PID. */
async function freeSubnet(first: number): Promise<{ clientIp: string; serverIp: string }> {
  const used = await run(['ip', '-4', '-o', 'addr', 'show'])
  for (let i = 0; i < SUBNETS; i++) {
    const n = ((first + i) % SUBNETS) * 4
    const base = `10.231.${n >> 8}.`
    const clientIp = `${base}${(n & 255) + 1}`
    const serverIp = `${base}${(n & 255) + 2}`
    if (!used.includes(` ${clientIp}/`) && !used.includes(` ${serverIp}/`)) return { clientIp, serverIp }
  }
  throw new Error('no free /30 left in 10.231.0.0/16')
}

/**
 * Root qdisc commands for one veth end: tbf alone, or netem with a tbf child
 * so both the delay and the rate apply. The burst holds a 64 KiB GSO packet
 * (tbf would cut larger ones into segments), and `latency` bounds the queue.
 */
function shaping(tc: string[], dev: string, { rate, delayMs }: LinkOptions): string[][] {
  const tbf = ['tbf', 'rate', rate!, 'burst', '256kb', 'latency', '20ms']
  if (!delayMs) return rate ? [[...tc, 'qdisc', 'add', 'dev', dev, 'root', ...tbf]] : []
  const netem = [...tc, 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', 'delay', `${delayMs}ms`, 'limit', '10000']
  return rate ? [netem, [...tc, 'qdisc', 'add', 'dev', dev, 'parent', '1:1', 'handle', '10:', ...tbf]] : [netem]
}

export async function makeLink(opts: LinkOptions = {}): Promise<Link | { skipped: string }> {
  if (process.platform !== 'linux') return { skipped: `network namespaces are Linux only (${process.platform})` }
  if (process.getuid?.() !== 0) return { skipped: 'making network namespaces needs root' }
  if (opts.delayMs !== undefined && !(opts.delayMs >= 0 && Number.isFinite(opts.delayMs))) throw new RangeError(`delayMs must be a finite number ≥ 0, not ${opts.delayMs}`)
  if (opts.rate !== undefined && !/^\d+(\.\d+)?[kmgt]?(bit|bps)$/i.test(opts.rate)) throw new RangeError(`rate must be as tc writes it ('1gbit'), not ${JSON.stringify(opts.rate)}`)
  const seq = made++
  const serverNs = `cacheserv-${process.pid}-${seq}`
  // Interface names are at most 15 bytes: "cs" + a 7-digit PID + a letter + the sequence number fits.
  const rootDev = `cs${process.pid}r${seq}`
  const nsDev = `cs${process.pid}s${seq}`

  let removal: Promise<void> | null = null
  // Deleting the root end removes its peer at once, even while a process still holds the namespace.
  const removeSync = () => {
    spawnSync('ip', ['link', 'del', rootDev], { stdio: 'ignore', timeout: STEP_TIMEOUT })
    spawnSync('ip', ['netns', 'del', serverNs], { stdio: 'ignore', timeout: STEP_TIMEOUT })
  }
  // A process that exits without remove() (a crash, a signal handler's exit) still leaves nothing behind.
  process.once('exit', removeSync)
  const remove = (): Promise<void> => {
    removal ??= (async () => {
      process.off('exit', removeSync)
      const quiet = (argv: string[]) => run(argv).catch(() => {})
      await quiet(['ip', 'link', 'del', rootDev])
      await quiet(['ip', 'netns', 'del', serverNs])
    })()
    return removal
  }

  try {
    const { clientIp, serverIp } = await freeSubnet(process.pid * 4 + seq)
    await run(['ip', 'netns', 'add', serverNs])
    await run(['ip', 'link', 'add', rootDev, 'type', 'veth', 'peer', 'name', nsDev, 'netns', serverNs])
    await run(['ip', 'addr', 'add', `${clientIp}/30`, 'dev', rootDev])
    await run(['ip', '-n', serverNs, 'addr', 'add', `${serverIp}/30`, 'dev', nsDev])
    await run(['ip', '-n', serverNs, 'link', 'set', 'lo', 'up'])
    await run(['ip', '-n', serverNs, 'link', 'set', nsDev, 'up'])
    await run(['ip', 'link', 'set', rootDev, 'up'])
    for (const argv of [...shaping(['tc'], rootDev, opts), ...shaping(['tc', '-n', serverNs], nsDev, opts)]) {
      await run(argv).catch((err: Error) => {
        const kind = argv.includes('netem') ? 'netem' : 'tbf'
        throw /qdisc kind is unknown|Unknown qdisc/i.test(err.message) ? new Unavailable(`this kernel has no ${kind} qdisc (sch_${kind}), so the link cannot be ${kind === 'netem' ? 'delayed' : 'shaped'}`) : err
      })
    }
    return { serverNs, serverIp, clientIp, exec: (argv) => ['ip', 'netns', 'exec', serverNs, ...argv], remove }
  } catch (err) {
    await remove()
    if (err instanceof Unavailable) return { skipped: err.message }
    throw err
  }
}
