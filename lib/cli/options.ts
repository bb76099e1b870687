/**
 * The value parsers of ./values.js as commander option parsers, and
 * commander's exit codes, for the server CLI. The client must not import
 * this module: it would load commander.
 */
import { type Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { EXIT_OK, EXIT_USAGE, formatSize, parseCount, parseOctal, parsePort, parseSeconds, parseSize } from './values.js'

export { EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './values.js'

/** A value parser whose complaint commander reports as "argument 'x' is invalid. <why>". */
function forCommander<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value)
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message)
    }
  }
}

export const sizeOption = forCommander(parseSize)
export const countOption = forCommander(parseCount)
export const secondsOption = forCommander(parseSeconds)
export const octalOption = forCommander(parseOctal)
export const portOption = forCommander(parsePort)

/** A size option whose default --help shows as a user would type it (1GiB, not 1073741824). */
export function sizeWithDefault(flags: string, description: string, bytes: number): Option {
  return new Option(flags, description).argParser(sizeOption).default(bytes, formatSize(bytes))
}

/** A file mode option whose default --help shows in octal (600, not 384). */
export function modeWithDefault(flags: string, description: string, mode: number): Option {
  return new Option(flags, description).argParser(octalOption).default(mode, mode.toString(8))
}

/** Make commander exit 2 on usage errors (it uses 1), 0 after --help/--version. */
export function usageExits(program: Command): Command {
  program.exitOverride((err: CommanderError) => {
    // --help and --version end with exit code 0; help shown for a missing subcommand is an error.
    process.exit(err.exitCode === 0 ? EXIT_OK : EXIT_USAGE)
  })
  for (const sub of program.commands) usageExits(sub)
  return program
}
