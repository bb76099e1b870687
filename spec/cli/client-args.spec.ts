/** The client's command table, through the parser: its commands, defaults and value parsers (the parser's own rules are in args.spec.ts). */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { commandLine } from '../helpers/command-line.js'
import { CLIENT } from '../../lib/cli/client-args.js'

const { run, usageError } = commandLine(CLIENT)

describe('client command line', () => {
  describe('commands and arguments', () => {
    it('read FILE with --offset and --length, values parsed', () => {
      const p = run('read', 'a.bin', '--offset', '1KiB', '--length=10')
      assert.equal(p.command.name, 'read')
      assert.deepEqual(p.args, ['a.bin'])
      assert.deepEqual(p.options, { offset: 1024, length: 10 })
      assert.deepEqual(p.global, {})
    })

    it('a left-out optional argument gets its default (or undefined)', () => {
      assert.deepEqual(run('ls').args, [''])
      assert.deepEqual(run('warm').args, [''])
      assert.deepEqual(run('tar').args, [''])
      assert.deepEqual(run('evict').args, [undefined])
    })
  })

  describe('global options', () => {
    it('before the command, camel-cased, values parsed', () => {
      const p = run('--server', 'tcp://h:1', '--token', 't', '--inject-faults', '1e-5:drop:7', 'ls')
      assert.deepEqual(p.global, { server: 'tcp://h:1', token: 't', injectFaults: { rate: 1e-5, mode: 'drop', seed: 7 } })
      assert.deepEqual(p.options, {})
    })

    it('--inject-faults defaults its mode to mixed and its seed to 1', () => {
      assert.deepEqual(run('--inject-faults', '0.5', 'ls').global, { injectFaults: { rate: 0.5, mode: 'mixed', seed: 1 } })
    })
  })

  describe('values its parsers refuse', () => {
    const cases: Array<[string, string[], string | RegExp]> = [
      ['--offset abc', ['read', 'a', '--offset', 'abc'], /^option '--offset <n>' argument 'abc' is invalid\. not a size: "abc"/],
      ['--offset -1', ['read', 'a', '--offset', '-1'], /^option '--offset <n>' argument '-1' is invalid\. not a size/],
      ['a bad --server', ['--server', 'not an address', 'ls'], /^option '--server <addr>' argument 'not an address' is invalid\. cannot parse address/],
      ['a bad --inject-faults rate', ['--inject-faults', '2', 'ls'], /^option '--inject-faults <rate\[:mode\[:seed\]\]>' argument '2' is invalid\. expected RATE/],
      ['a bad --inject-faults mode', ['--inject-faults', '0.1:melt', 'ls'], /argument '0\.1:melt' is invalid/],
      ['a bad --inject-faults seed', ['--inject-faults', '0.1:flip:x', 'ls'], /argument '0\.1:flip:x' is invalid/],
    ]
    for (const [what, args, message] of cases) it(what, () => usageError(args, message))
  })
})
