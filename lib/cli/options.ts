/** Option parsing shared by both CLIs: human sizes, counts, and exit codes. */
import { type Command, CommanderError, InvalidArgumentError } from 'commander'
import { createRequire } from 'node:module'

/** Loaded on first use: most runs of the client never parse a size. */
const parseSize = (value: string): number => (createRequire(import.meta.url)('filesize-parser') as (s: string) => number)(value)

/** Exit codes of both commands. */
export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** A size with optional unit: 4096, 64KiB, 512MiB, 2G (units are powers of 1024). */
export function sizeOption(value: string): number {
  let n: number
  try {
    n = parseSize(value)
  } catch {
    throw new InvalidArgumentError(`not a size: ${JSON.stringify(value)} (try 4096, 64KiB, 512MiB, 2G)`)
  }
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a size: ${JSON.stringify(value)}`)
  return Math.floor(n)
}

/** A byte count: plain digits, or a size with a unit. */
export function countOption(value: string): number {
  if (/^\d+$/.test(value)) {
    const n = Number(value)
    if (!Number.isSafeInteger(n)) throw new InvalidArgumentError(`${value} is too large`)
    return n
  }
  return sizeOption(value)
}

/** Seconds, fractions allowed: 0.5, 30, 600. */
export function secondsOption(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`not a number of seconds: ${JSON.stringify(value)}`)
  return n
}

/** File permissions in octal: 600, 0660. */
export function octalOption(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new InvalidArgumentError(`not an octal file mode: ${JSON.stringify(value)} (try 600 or 660)`)
  return parseInt(value, 8)
}

export function portOption(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError(`not a port number: ${JSON.stringify(value)}`)
  return n
}

/** Make commander exit 2 on usage errors (it uses 1), 0 after --help/--version. */
export function usageExits(program: Command): Command {
  program.exitOverride((err: CommanderError) => {
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help'
    process.exit(ok ? EXIT_OK : EXIT_USAGE)
  })
  for (const sub of program.commands) usageExits(sub)
  return program
}
