/**
 * parseCommandLine over a table of its own (the client's table has its own
 * spec): where options may go, help and version before mistakes, and usage
 * errors in commander's words.
 */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseCommandLine, type ProgramSpec, UsageError } from '../../lib/cli/args.js'
import { commandLine } from '../helpers/command-line.js'

function count(value: string): number {
  if (!/^\d+$/.test(value)) throw new Error(`not a count: "${value}"`)
  return Number(value)
}

function address(value: string): string {
  if (!value.includes(':')) throw new Error(`no port in ${value}`)
  return value
}

const FILE = { name: 'file', description: 'a file', required: true }

const PROGRAM = {
  name: 'prog',
  description: 'A program to parse for.',
  options: [
    { flags: '--server <addr>', description: 'where', parse: address },
    { flags: '--token <token>', description: 'a secret' },
  ],
  commands: [
    {
      name: 'read',
      description: 'read a file',
      arguments: [FILE],
      options: [
        { flags: '-o, --offset <n>', description: 'first byte', parse: count },
        { flags: '--length <n>', description: 'bytes', parse: count },
      ],
    },
    { name: 'ls', description: 'list', arguments: [{ name: 'dir', description: 'a directory', default: '' }], options: [{ flags: '--long', description: 'sizes too' }] },
    { name: 'stat', description: 'stat a file', arguments: [FILE], options: [] },
    { name: 'stats', description: 'counters', arguments: [], options: [{ flags: '--json', description: 'as JSON' }] },
    { name: 'evict', description: 'drop', arguments: [{ name: 'path', description: 'a path' }], options: [] },
    {
      name: 'tar',
      description: 'archive',
      arguments: [{ name: 'dir', description: 'a directory', default: '' }],
      options: [
        { flags: '--list <file>', description: 'paths from a file' },
        { flags: '--no-manifest', description: 'no manifest' },
      ],
    },
  ],
} satisfies ProgramSpec

const { parse, run, usageError } = commandLine(PROGRAM)

describe('parseCommandLine', () => {
  describe('commands, arguments and options', () => {
    it('gives the command, its arguments in order, its options and the global ones apart', () => {
      const p = run('--token', 't', 'read', 'a.bin', '--offset', '5', '--length=10')
      assert.equal(p.command.name, 'read')
      assert.deepEqual(p.args, ['a.bin'])
      assert.deepEqual(p.options, { offset: 5, length: 10 })
      assert.deepEqual(p.global, { token: 't' })
    })

    it('options may come between the command and its argument', () => {
      const p = run('read', '--offset', '5', 'a.bin')
      assert.deepEqual(p.args, ['a.bin'])
      assert.deepEqual(p.options, { offset: 5 })
    })

    it('a short alias sets the long name', () => {
      assert.deepEqual(run('read', 'a', '-o', '7').options, { offset: 7 })
    })

    it('a left-out argument gets its default, or undefined without one', () => {
      assert.deepEqual(run('ls').args, [''])
      assert.deepEqual(run('evict').args, [undefined])
      assert.deepEqual(run('ls', 'sub').args, ['sub'])
    })

    it('a flag is true; its key is the long name camel-cased, a --no- prefix included', () => {
      assert.deepEqual(run('stats', '--json').options, { json: true })
      assert.deepEqual(run('tar', '--no-manifest').options, { noManifest: true })
    })

    it('a value is the parser\'s result, or the string without a parser', () => {
      assert.deepEqual(run('read', 'a', '--offset', '12').options, { offset: 12 })
      assert.deepEqual(run('tar', '--list', '12').options, { list: '12' })
    })

    it('the last of a repeated option wins', () => {
      assert.deepEqual(run('read', 'a', '--offset', '1', '--offset', '2').options, { offset: 2 })
      assert.deepEqual(run('--server', 'a:1', 'ls', '--server', 'b:2').global, { server: 'b:2' })
    })

    it('a value may start with a dash (--list - reads stdin)', () => {
      assert.deepEqual(run('tar', '--list', '-').options, { list: '-' })
      assert.deepEqual(run('tar', '--list', '-weird').options, { list: '-weird' })
    })

    it('after --, everything is an argument', () => {
      assert.deepEqual(run('stat', '--', '--json').args, ['--json'])
      assert.deepEqual(run('--', 'stat', '-x').args, ['-x'])
    })
  })

  describe('global options', () => {
    it('after the command and its arguments too', () => {
      const p = run('read', 'a.bin', '--server=unix:/s', '--length', '1')
      assert.deepEqual(p.global, { server: 'unix:/s' })
      assert.deepEqual(p.options, { length: 1 })
    })
  })

  describe('help and version', () => {
    it('--help, -h and help alone are the program help', () => {
      for (const args of [['--help'], ['-h'], ['help'], ['--server', 'x:1', '--help']]) assert.deepEqual(parse(...args), { kind: 'help', command: null })
    })

    it('COMMAND --help, COMMAND -h and help COMMAND are that command help', () => {
      for (const args of [['tar', '--help'], ['tar', '-h'], ['help', 'tar'], ['tar', '--list', 'x', '--help']]) {
        const p = parse(...args)
        assert.equal(p.kind, 'help')
        assert.equal(p.command?.name, 'tar')
      }
    })

    it('help wins over mistakes: missing arguments, unknown options, bad values', () => {
      assert.equal(parse('read', '--help').kind, 'help')
      assert.equal(parse('read', '--frob', '--help').kind, 'help')
      assert.equal(parse('read', '--offset', 'abc', '--help').kind, 'help')
    })

    it('--version and -V, before or after a command', () => {
      for (const args of [['--version'], ['-V'], ['read', '--version']]) assert.deepEqual(parse(...args), { kind: 'version' })
    })

    it('--version wins over mistakes too, and --help over --version', () => {
      assert.deepEqual(parse('read', '--frob', '--version'), { kind: 'version' })
      assert.deepEqual(parse('--frob', '--version'), { kind: 'version' })
      assert.deepEqual(parse('frob', '-V'), { kind: 'version' })
      assert.deepEqual(parse('--version', '--help'), { kind: 'help', command: null })
    })

    it('no command at all asks for usage on stderr', () => {
      assert.deepEqual(parse(), { kind: 'help', command: null, error: true })
      assert.deepEqual(parse('--server', 'x:1'), { kind: 'help', command: null, error: true })
    })
  })

  describe('usage errors in commander words', () => {
    const cases: Array<[string, string[], string | RegExp]> = [
      ['an unknown command', ['frobnicate'], "unknown command 'frobnicate'"],
      ['a near-miss command', ['sats'], "unknown command 'sats'"],
      ['help for an unknown command', ['help', 'frob'], "unknown command 'frob'"],
      ['an unknown option', ['read', 'a', '--frob'], "unknown option '--frob'"],
      ['an unknown option before the command', ['--frob', 'read', 'a'], "unknown option '--frob'"],
      ['an unknown option without a command', ['--frob'], "unknown option '--frob'"],
      ['a near-miss option', ['read', 'a', '--lenght', '1'], "unknown option '--lenght'"],
      ['an unknown short option', ['read', 'a', '-x'], "unknown option '-x'"],
      ["another command's option", ['ls', '--json'], "unknown option '--json'"],
      ['a command option before the command', ['--offset', '1', 'read', 'a'], "unknown option '--offset'"],
      ['a missing value', ['read', 'a', '--offset'], "option '-o, --offset <n>' argument missing"],
      ['a missing global value', ['ls', '--server'], "option '--server <addr>' argument missing"],
      ['a value given to a flag', ['stats', '--json=1'], "option '--json' does not take an argument"],
      ['a missing argument', ['read'], "missing required argument 'file'"],
      ['an extra argument', ['read', 'a', 'b'], "too many arguments for 'read'. Expected 1 argument but got 2."],
      ['an argument to a command that takes none', ['stats', 'x'], "too many arguments for 'stats'. Expected 0 arguments but got 1."],
      ['a value its parser refuses, with the reason', ['read', 'a', '--offset', 'abc'], `option '-o, --offset <n>' argument 'abc' is invalid. not a count: "abc"`],
      ['a global value its parser refuses', ['--server', 'nowhere', 'ls'], /^option '--server <addr>' argument 'nowhere' is invalid\. no port in nowhere/],
    ]
    for (const [what, args, message] of cases) it(what, () => usageError(args, message))

    it('a short spelling of an option that has only a long one is unknown', () => {
      const program: ProgramSpec = { name: 'p', description: '', options: [], commands: [{ name: 'c', description: '', arguments: [], options: [{ flags: '--x <n>', description: '' }] }] }
      assert.deepEqual(parseCommandLine(program, ['c', '--x', '1']), { kind: 'run', command: program.commands[0], args: [], options: { x: '1' }, global: {} })
      assert.throws(() => parseCommandLine(program, ['c', '-x', '1']), (err: Error) => err instanceof UsageError && err.message === "unknown option '-x'")
    })
  })

  it('a table whose flags cannot be read is a programming error, not a usage error', () => {
    const program: ProgramSpec = { name: 'p', description: '', options: [{ flags: 'server', description: '' }], commands: [] }
    assert.throws(() => parseCommandLine(program, []), (err: Error) => !(err instanceof UsageError) && /cannot read option flags "server"/.test(err.message))
  })
})
