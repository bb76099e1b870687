/**
 * Two "hosts" on one machine: a network namespace for the server, joined to
 * the root namespace (the client's) by a veth pair in a private /30, the
 * link shaped in both directions with tbf (and, when asked, delayed with
 * netem). Needs root and iproute2; where namespaces cannot be made, makeLink
 * says why instead of throwing, so callers can skip.
 *
 * A kernel built without netem still gets its delay: the link is then two
 * veth pairs, the client's end and the server's each paired with an end in
 * a third namespace (the wire), where a small relay (python3, AF_PACKET)
 * holds every frame for the delay before passing it on. The endpoints, their
 * addresses and their tbf are the same either way.
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import type { Socket } from 'node:net'

export interface Link {
  /** The server host's namespace. */
  serverNs: string
  /** The address of the veth end inside serverNs. */
  serverIp: string
  /** The address of the veth end in the root namespace. */
  clientIp: string
  /** `argv` run inside serverNs. */
  exec(argv: string[]): string[]
  /** Stop the relay if there is one, delete the veth pairs and the namespaces; safe to call again. */
  remove(): Promise<void>
  /** What delays the link: netem on each end, the relay in the wire namespace (no netem in this kernel), or nothing. */
  delayBy: 'netem' | 'relay' | null
}

export interface LinkOptions {
  /** tbf rate of each direction, as tc writes it ('1gbit', '500mbit'); unshaped when absent. */
  rate?: string
  /** One-way delay of each direction, ms: netem on each end, or the relay where the kernel has no netem. */
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

/** The wire's ends, inside its own namespace (so the names cannot clash). */
const WIRE_A = 'wire-a'
const WIRE_B = 'wire-b'

/**
 * The wire's relay: frames from one end go out of the other `delay` ms later.
 * Each frame keeps the virtio-net header it was read with (PACKET_VNET_HDR),
 * so checksums left to offload and 64 KiB GSO frames pass as between two
 * veth ends, and the relay handles a few thousand frames a second at 1 Gbit/s
 * rather than 80,000. Exits when its stdin closes.
 */
const RELAY = `
import collections, ctypes, os, select, socket, sys, time
SOL_PACKET, PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING, SO_RCVBUFFORCE, PACKET_OUTGOING = 263, 15, 23, 33, 4
delay = float(sys.argv[3]) / 1000

def open_end(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    for level, opt, value in ((SOL_PACKET, PACKET_IGNORE_OUTGOING, 1), (socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)):
        try: s.setsockopt(level, opt, value)
        except OSError: pass
    s.bind((name, 0))
    s.setblocking(False)
    return s

a, b = open_end(sys.argv[1]), open_end(sys.argv[2])
try: ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK, 1 ns: the default 50 us is a tenth of the delay
except Exception: pass
# One delay for all frames, so each direction is a FIFO of (due, frame).
queues = {a: (b, collections.deque()), b: (a, collections.deque())}
# How late select() wakes, learnt from its timeouts: frames leave that much early, so on time on average.
late = 0.0
buf = bytearray(1 << 18)
stdin = sys.stdin.fileno()
print('ready', flush=True)
while True:
    due = [q[0][0] for _, q in queues.values() if q]
    timeout = max(0.0, min(due) - late - time.monotonic()) if due else None
    wake = None if timeout is None else time.monotonic() + timeout
    ready = select.select([a, b, stdin], [], [], timeout)[0]
    now = time.monotonic()
    for s in ready:
        if s == stdin:
            if not os.read(stdin, 4096): sys.exit(0)
            continue
        q = queues[s][1]
        while True:
            try: n, addr = s.recvfrom_into(buf)
            except BlockingIOError: break
            if addr[2] != PACKET_OUTGOING: q.append((now + delay, bytes(buf[:n])))
    now = time.monotonic()
    if wake is not None and not ready:
        late = min(max(late + 0.1 * (now - wake - late), 0.0), delay / 2)
    for out, q in queues.values():
        while q and q[0][0] <= now + late:
            try: out.send(q.popleft()[1])
            except OSError: pass  # a frame the far end cannot take is lost, as on a wire
`

/** Start the relay between the wire's two ends; resolves once its sockets are bound. */
function startRelay(wireNs: string, delayMs: number): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', wireNs, 'python3', '-c', RELAY, WIRE_A, WIRE_B, String(delayMs)], { stdio: ['pipe', 'pipe', 'pipe'] })
  let err = ''
  child.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4096)))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the delay relay was not ready within ${STEP_TIMEOUT} ms: ${err.trim()}`))
    }, STEP_TIMEOUT)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      const why = `the delay relay exited (${code ?? signal}) before it was ready: ${err.trim()}`
      reject(/exec of "python3" failed/.test(err) ? new Unavailable(`this kernel has no netem qdisc (sch_netem), and no python3 for the relay that would delay the link instead`) : new Error(why))
    })
    child.stdout!.once('data', () => {
      clearTimeout(timer)
      // Neither the relay nor its pipes keep this process alive; its exit hook kills the relay.
      child.unref()
      for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as Socket).unref()
      // It is only ever stopped by a signal: any other end leaves the link dead, and says why.
      child.once('exit', (code, signal) => {
        if (signal === null) process.stderr.write(`netns: the delay relay in ${wireNs} exited (${code}): ${err.trim()}\n`)
      })
      resolve(child)
    })
  })
}

/** Whether this kernel has netem: tried on the new namespace's lo, then taken off. */
async function hasNetem(ns: string): Promise<boolean> {
  try {
    await run(['tc', '-n', ns, 'qdisc', 'add', 'dev', 'lo', 'root', 'netem', 'delay', '1ms'])
  } catch (err) {
    if (/qdisc kind is unknown|Unknown qdisc/i.test((err as Error).message)) return false
    throw err
  }
  await run(['tc', '-n', ns, 'qdisc', 'del', 'dev', 'lo', 'root'])
  return true
}

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
function shaping(tc: string[], dev: string, rate: string | undefined, netemMs: number): string[][] {
  const tbf = ['tbf', 'rate', rate!, 'burst', '256kb', 'latency', '20ms']
  if (!netemMs) return rate ? [[...tc, 'qdisc', 'add', 'dev', dev, 'root', ...tbf]] : []
  const netem = [...tc, 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'netem', 'delay', `${netemMs}ms`, 'limit', '10000']
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
  const wireNs = `${serverNs}-wire`
  let relay: ChildProcess | null = null
  const running = (p: ChildProcess | null): p is ChildProcess => p !== null && p.exitCode === null && p.signalCode === null

  let removal: Promise<void> | null = null
  // Deleting an end removes its peer at once, even while a process still holds the namespace.
  const links = [['ip', 'link', 'del', rootDev], ['ip', '-n', serverNs, 'link', 'del', nsDev]]
  const namespaces = [['ip', 'netns', 'del', serverNs], ['ip', 'netns', 'del', wireNs]]
  const removeSync = () => {
    if (running(relay)) relay.kill('SIGKILL')
    for (const argv of [...links, ...namespaces]) spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore', timeout: STEP_TIMEOUT })
  }
  // A process that exits without remove() (a crash, a signal handler's exit) still leaves nothing behind.
  process.once('exit', removeSync)
  const remove = (): Promise<void> => {
    removal ??= (async () => {
      process.off('exit', removeSync)
      if (running(relay)) {
        const exited = once(relay, 'exit')
        relay.kill('SIGTERM')
        const timer = setTimeout(() => relay!.kill('SIGKILL'), 3000)
        await exited
        clearTimeout(timer)
      }
      // Each may be gone already (a peer deleted with its end, a namespace never made).
      for (const argv of [...links, ...namespaces]) await run(argv).catch(() => {})
    })()
    return removal
  }

  try {
    const { clientIp, serverIp } = await freeSubnet(process.pid * 4 + seq)
    await run(['ip', 'netns', 'add', serverNs])
    const delayBy = opts.delayMs ? ((await hasNetem(serverNs)) ? 'netem' : 'relay') : null
    if (delayBy === 'relay') {
      await run(['ip', 'netns', 'add', wireNs])
      await run(['ip', 'link', 'add', rootDev, 'type', 'veth', 'peer', 'name', WIRE_A, 'netns', wireNs])
      await run(['ip', '-n', serverNs, 'link', 'add', nsDev, 'type', 'veth', 'peer', 'name', WIRE_B, 'netns', wireNs])
      await run(['ip', '-n', wireNs, 'link', 'set', WIRE_A, 'up'])
      await run(['ip', '-n', wireNs, 'link', 'set', WIRE_B, 'up'])
      relay = await startRelay(wireNs, opts.delayMs!)
    } else {
      await run(['ip', 'link', 'add', rootDev, 'type', 'veth', 'peer', 'name', nsDev, 'netns', serverNs])
    }
    await run(['ip', 'addr', 'add', `${clientIp}/30`, 'dev', rootDev])
    await run(['ip', '-n', serverNs, 'addr', 'add', `${serverIp}/30`, 'dev', nsDev])
    await run(['ip', '-n', serverNs, 'link', 'set', 'lo', 'up'])
    await run(['ip', '-n', serverNs, 'link', 'set', nsDev, 'up'])
    await run(['ip', 'link', 'set', rootDev, 'up'])
    const netemMs = delayBy === 'netem' ? opts.delayMs! : 0
    for (const argv of [...shaping(['tc'], rootDev, opts.rate, netemMs), ...shaping(['tc', '-n', serverNs], nsDev, opts.rate, netemMs)]) {
      await run(argv).catch((err: Error) => {
        const kind = argv.includes('netem') ? 'netem' : 'tbf'
        throw /qdisc kind is unknown|Unknown qdisc/i.test(err.message) ? new Unavailable(`this kernel has no ${kind} qdisc (sch_${kind}), so the link cannot be ${kind === 'netem' ? 'delayed' : 'shaped'}`) : err
      })
    }
    return { serverNs, serverIp, clientIp, exec: (argv) => ['ip', 'netns', 'exec', serverNs, ...argv], remove, delayBy }
  } catch (err) {
    await remove()
    if (err instanceof Unavailable) return { skipped: err.message }
    throw err
  }
}
