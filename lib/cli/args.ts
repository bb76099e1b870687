/**
 * Subcommand-style argument parsing from a declarative table (global options,
 * commands with their arguments and options), on node:util parseArgs. The
 * client uses it instead of commander: commander is CommonJS, and loading it
 * from ESM costs 17-29 ms, most of the client's start-up budget.
 *
 * Behaves as commander did for the client (without its spelling hints): global options before or after
 * the command, `--opt value` and `--opt=value`, `--` ends the options, the
 * last of a repeated option wins, --help and --version win over mistakes.
 */
import { type ParseArgsConfig, parseArgs } from 'node:util'

export interface OptionSpec {
  /** As commander writes them: '--offset <n>', '--json', '-h, --help'. */
  flags: string
  description: string
  /** What the command gets for the value; throws an Error that says why a value is bad. */
  parse?: (value: string) => unknown
}

export interface ArgumentSpec {
  name: string
  description: string
  required?: boolean
  /** What the command gets when the argument is left out. */
  default?: string
}

export interface CommandSpec {
  name: string
  description: string
  arguments: readonly ArgumentSpec[]
  options: readonly OptionSpec[]
}

export interface ProgramSpec {
  name: string
  description: string
  options: readonly OptionSpec[]
  commands: readonly CommandSpec[]
}

/** Option values by camel-cased long name (--inject-faults → injectFaults). */
export type Values = Record<string, unknown>

export type Parsed =
  /** With `error`, no command was given: usage on stderr, exit 2. */
  | { kind: 'help'; command: CommandSpec | null; error?: boolean }
  | { kind: 'version' }
  | { kind: 'run'; command: CommandSpec; args: (string | undefined)[]; options: Values; global: Values }

/** A mistake on the command line: reported with a pointer to --help, exit 2. */
export class UsageError extends Error {}

export const HELP_OPTION: OptionSpec = { flags: '-h, --help', description: 'display help for command' }
export const VERSION_OPTION: OptionSpec = { flags: '-V, --version', description: 'output the version number' }
export const HELP_COMMAND: CommandSpec = {
  name: 'help',
  description: 'display help for command',
  arguments: [{ name: 'command', description: 'command to describe' }],
  options: [],
}

interface Option {
  spec: OptionSpec
  long: string
  short?: string
  key: string
  takesValue: boolean
}

function option(spec: OptionSpec): Option {
  const m = /^(?:-(\w), )?--([a-z][\w-]*)( [<[].*)?$/.exec(spec.flags)
  if (!m) throw new Error(`cannot read option flags ${JSON.stringify(spec.flags)}`)
  return { spec, short: m[1], long: m[2], key: m[2].replace(/-(\w)/g, (_, c: string) => c.toUpperCase()), takesValue: m[3] !== undefined }
}

type Token = NonNullable<ReturnType<typeof parseArgs<ParseArgsConfig>>['tokens']>[number]
type Positional = Extract<Token, { kind: 'positional' }>

interface OptionUse {
  token: Extract<Token, { kind: 'option' }>
  /** Undefined for an option not in the table. */
  option?: Option
}

/**
 * Tokens of `args` for these options. Not strict: unknown options and
 * missing values come back as tokens and are reported by check() in
 * commander's words (parseArgs' own errors are worded for programmers, and
 * its strict mode refuses values that start with a dash, such as `--list -`).
 */
function tokenize(args: string[], options: readonly Option[]): { uses: OptionUse[]; positionals: Positional[]; terminator?: number } {
  const config: ParseArgsConfig = {
    args,
    // parseArgs refuses `short: undefined`.
    options: Object.fromEntries(options.map((o) => [o.long, { type: o.takesValue ? 'string' : 'boolean', ...(o.short && { short: o.short }) }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  }
  const byLong = new Map(options.map((o) => [o.long, o]))
  const uses: OptionUse[] = []
  const positionals: Positional[] = []
  let terminator: number | undefined
  for (const token of parseArgs(config).tokens ?? []) {
    if (token.kind === 'option') {
      const o = byLong.get(token.name)
      // An unknown short option may share its letter with a long name: match the raw spelling.
      const known = o !== undefined && (token.rawName === `--${o.long}` || token.rawName === `-${o.short}`)
      uses.push({ token, option: known ? o : undefined })
    } else if (token.kind === 'positional') {
      positionals.push(token)
    } else {
      terminator = token.index
    }
  }
  return { uses, positionals, terminator }
}

/** Unknown options, missing values, and values given to flags. */
function check(uses: OptionUse[]): void {
  for (const { token, option: o } of uses) {
    if (!o) throw new UsageError(`unknown option '${token.rawName}'`)
    if (o.takesValue && token.value === undefined) throw new UsageError(`option '${o.spec.flags}' argument missing`)
    if (!o.takesValue && token.value !== undefined) throw new UsageError(`option '${o.spec.flags}' does not take an argument`)
  }
}

function values(uses: OptionUse[], into: (o: Option) => Values): void {
  for (const { token, option: o } of uses) {
    if (!o) continue
    const raw = token.value
    if (raw === undefined) {
      into(o)[o.key] = true
      continue
    }
    try {
      into(o)[o.key] = o.spec.parse ? o.spec.parse(raw) : raw
    } catch (err) {
      throw new UsageError(`option '${o.spec.flags}' argument '${raw}' is invalid. ${(err as Error).message}`)
    }
  }
}

/** Parse `args` (argv without node and the script) against the table; throws UsageError. */
export function parseCommandLine(program: ProgramSpec, args: string[]): Parsed {
  const globals = [...program.options, VERSION_OPTION, HELP_OPTION].map(option)
  const commands = [...program.commands, HELP_COMMAND]
  // First pass, global options only: finds the command, the first positional.
  const head = tokenize(args, globals)
  const name = head.positionals[0]
  const before = name ? head.uses.filter((u) => u.token.index < name.index) : head.uses
  const command = name && commands.find((c) => c.name === name.value)
  // Second pass, over what follows the command, now knowing its options.
  const own = command ? command.options.map(option) : []
  const rest = name ? args.slice(name.index + 1) : []
  // After a `--` before the command, everything is an argument.
  const tail = tokenize(name && head.terminator !== undefined && head.terminator < name.index ? ['--', ...rest] : rest, [...own, ...globals])
  const uses = [...before, ...tail.uses]
  const wants = (spec: OptionSpec) => uses.some((u) => u.option?.spec === spec)

  if (command === HELP_COMMAND || wants(HELP_OPTION)) {
    const about = command === HELP_COMMAND ? tail.positionals[0]?.value : name?.value
    if (about === undefined) return { kind: 'help', command: null }
    const described = program.commands.find((c) => c.name === about)
    if (!described) throw new UsageError(`unknown command '${about}'`)
    return { kind: 'help', command: described }
  }
  if (wants(VERSION_OPTION)) return { kind: 'version' }
  check(before)
  if (!name) return { kind: 'help', command: null, error: true }
  if (!command) throw new UsageError(`unknown command '${name.value}'`)
  check(tail.uses)

  const global: Values = {}
  const options: Values = {}
  values(uses, (o) => (own.includes(o) ? options : global))
  const given = tail.positionals.map((p) => p.value)
  const expected = command.arguments.length
  if (given.length > expected) {
    throw new UsageError(`too many arguments for '${command.name}'. Expected ${expected} argument${expected === 1 ? '' : 's'} but got ${given.length}.`)
  }
  const missing = command.arguments.find((a, i) => a.required && given[i] === undefined)
  if (missing) throw new UsageError(`missing required argument '${missing.name}'`)
  return { kind: 'run', command, args: command.arguments.map((a, i) => given[i] ?? a.default), options, global }
}
