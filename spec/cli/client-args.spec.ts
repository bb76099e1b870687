/** The client's command line, parsed in-process (the end-to-end specs spawn the CLI). */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { type Parsed, parseCommandLine, UsageError } from '../../lib/cli/args.js'
import { CLIENT } from '../../lib/cli/client-args.js'
import { renderHelp } from '../../lib/cli/help.js'

const parse = (...args: string[]) => parseCommandLine(CLIENT, args)

function run(...args: string[]): Extract<Parsed, { kind: 'run' }> {
  const p = parse(...args)
  assert.equal(p.kind, 'run')
  return p
}

function usageError(args: string[], message: string | RegExp): void {
  assert.throws(() => parse(...args), (err: Error) => {
    assert.ok(err instanceof UsageError, err.stack)
    if (typeof message === 'string') assert.equal(err.message, message)
    else assert.match(err.message, message)
    return true
  })
}

describe('client command line', () => {
  describe('commands and arguments', () => {
    it('read FILE with --offset and --length, values parsed', () => {
      const p = run('read', 'a.bin', '--offset', '1KiB', '--length=10')
      assert.equal(p.command.name, 'read')
      assert.deepEqual(p.args, ['a.bin'])
      assert.deepEqual(p.options, { offset: 1024, length: 10 })
      assert.deepEqual(p.global, {})
    })

    it('options may come between the command and its argument', () => {
      const p = run('read', '--offset', '5', 'a.bin')
      assert.deepEqual(p.args, ['a.bin'])
      assert.deepEqual(p.options, { offset: 5 })
    })

    it('a left-out optional argument gets its default (or undefined)', () => {
      assert.deepEqual(run('ls').args, [''])
      assert.deepEqual(run('warm').args, [''])
      assert.deepEqual(run('tar').args, [''])
      assert.deepEqual(run('evict').args, [undefined])
    })

    it('a flag is true', () => {
      assert.deepEqual(run('stats', '--json').options, { json: true })
    })

    it('the last of a repeated option wins', () => {
      assert.deepEqual(run('read', 'a', '--offset', '1', '--offset', '2').options, { offset: 2 })
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
    it('before the command, camel-cased, values parsed', () => {
      const p = run('--server', 'tcp://h:1', '--token', 't', '--inject-faults', '1e-5:drop:7', 'ls')
      assert.deepEqual(p.global, { server: 'tcp://h:1', token: 't', injectFaults: { rate: 1e-5, mode: 'drop', seed: 7 } })
      assert.deepEqual(p.options, {})
    })

    it('after the command and its arguments too', () => {
      const p = run('read', 'a.bin', '--server=unix:/s', '--length', '1')
      assert.deepEqual(p.global, { server: 'unix:/s' })
      assert.deepEqual(p.options, { length: 1 })
    })

    it('--inject-faults defaults its mode to mixed and its seed to 1', () => {
      assert.deepEqual(run('--inject-faults', '0.5', 'ls').global, { injectFaults: { rate: 0.5, mode: 'mixed', seed: 1 } })
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
      ['a near-miss option', ['read', 'a', '--lenght', '1'], "unknown option '--lenght'"],
      ['an unknown short option', ['read', 'a', '-x'], "unknown option '-x'"],
      ["another command's option", ['ls', '--json'], "unknown option '--json'"],
      ['a command option before the command', ['--offset', '1', 'read', 'a'], "unknown option '--offset'"],
      ['a missing value', ['read', 'a', '--offset'], "option '--offset <n>' argument missing"],
      ['a missing global value', ['ls', '--server'], "option '--server <addr>' argument missing"],
      ['a value given to a flag', ['stats', '--json=1'], "option '--json' does not take an argument"],
      ['a missing argument', ['read'], "missing required argument 'file'"],
      ['an extra argument', ['read', 'a', 'b'], "too many arguments for 'read'. Expected 1 argument but got 2."],
      ['an argument to a command that takes none', ['stats', 'x'], "too many arguments for 'stats'. Expected 0 arguments but got 1."],
      ['--offset abc', ['read', 'a', '--offset', 'abc'], /^option '--offset <n>' argument 'abc' is invalid\. not a size: "abc"/],
      ['--offset -1', ['read', 'a', '--offset', '-1'], /^option '--offset <n>' argument '-1' is invalid\. not a size/],
      ['a bad --server', ['--server', 'not an address', 'ls'], /^option '--server <addr>' argument 'not an address' is invalid\. cannot parse address/],
      ['a bad --inject-faults rate', ['--inject-faults', '2', 'ls'], /^option '--inject-faults <rate\[:mode\[:seed\]\]>' argument '2' is invalid\. expected RATE/],
      ['a bad --inject-faults mode', ['--inject-faults', '0.1:melt', 'ls'], /argument '0\.1:melt' is invalid/],
      ['a bad --inject-faults seed', ['--inject-faults', '0.1:flip:x', 'ls'], /argument '0\.1:flip:x' is invalid/],
    ]
    for (const [what, args, message] of cases) it(what, () => usageError(args, message))
  })

  describe('help text', () => {
    it('the program help lists every command and option with its description', () => {
      const text = renderHelp(CLIENT, null)
      assert.match(text, /^Usage: cacheserv-pipe-client \[options\] \[command\]\n/)
      for (const c of CLIENT.commands) assert.match(text, new RegExp(`^  ${c.name} `, 'm'))
      const flat = text.replace(/\s+/g, ' ')
      for (const o of CLIENT.options) assert.ok(flat.includes(`${o.flags} ${o.description}`), o.flags)
      for (const line of text.split('\n')) assert.ok(line.length <= 80, `too wide: ${line}`)
    })

    it('a command help shows its usage, arguments and options', () => {
      const text = renderHelp(CLIENT, CLIENT.commands[0])
      assert.match(text, /^Usage: cacheserv-pipe-client read \[options\] <file>\n/)
      const flat = text.replace(/\s+/g, ' ')
      assert.ok(flat.includes('file path relative to the served root'))
      assert.ok(flat.includes('--length <n> bytes to read (clipped at the end of the file)'))
      assert.ok(flat.includes('Global Options:'))
    })

    it('wraps to a wider terminal', () => {
      const text = renderHelp(CLIENT, null, 200)
      assert.match(text, /--inject-faults <rate\[:mode\[:seed\]\]> +damage received .* prints a summary on stderr\n/)
    })
  })
})
