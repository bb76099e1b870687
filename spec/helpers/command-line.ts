/** A command table's parse, and assertions on its outcome, for the specs of the CLI's parser. */
import assert from 'node:assert/strict'
import { type Parsed, parseCommandLine, type ProgramSpec, UsageError } from '../../lib/cli/args.js'

export function commandLine(program: ProgramSpec) {
  const parse = (...args: string[]) => parseCommandLine(program, args)
  /** The parse of `args`, which must be a command to run. */
  const run = (...args: string[]): Extract<Parsed, { kind: 'run' }> => {
    const p = parse(...args)
    assert.equal(p.kind, 'run')
    return p
  }
  /** `args` must be refused with a UsageError saying `message`. */
  const usageError = (args: string[], message: string | RegExp): void => {
    assert.throws(() => parse(...args), (err: Error) => {
      assert.ok(err instanceof UsageError, err.stack)
      if (typeof message === 'string') assert.equal(err.message, message)
      else assert.match(err.message, message)
      return true
    })
  }
  return { parse, run, usageError }
}
