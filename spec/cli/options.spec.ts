/** commander glue of the server CLI: value parsers, defaults shown in --help, exit codes. */
import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { Command, InvalidArgumentError } from 'commander'
import { modeWithDefault, sizeOption, sizeWithDefault } from '../../lib/cli/options.js'
import { run } from '../helpers/cli.js'

const OPTIONS = fileURLToPath(new URL('../../lib/cli/options.js', import.meta.url))

/** Exit code of a program whose only command needs a subcommand, run with `args`. */
async function exitOf(args: string[]): Promise<number | null> {
  const script = `
    import { Command } from 'commander'
    import { usageExits } from ${JSON.stringify(OPTIONS)}
    const program = new Command('p').version('1.0.0').exitOverride()
    program.command('sub').option('--n <n>', 'a number').action(() => {})
    usageExits(program).configureOutput({ writeOut: () => {}, writeErr: () => {} })
    program.parse(${JSON.stringify(args)}, { from: 'user' })
  `
  const r = await run(process.execPath, ['--input-type=module', '-e', script])
  return r.code
}

describe('server CLI options', () => {
  it('reports a bad value as commander\'s invalid argument, with the reason', () => {
    assert.equal(sizeOption('4Gb'), 4 * 2 ** 30)
    assert.throws(() => sizeOption('4 gallons'), (err: Error) => err instanceof InvalidArgumentError && /not a size: "4 gallons"/.test(err.message))
  })

  it('shows defaults in --help as a user types them', () => {
    const program = new Command('p').addOption(sizeWithDefault('--cache-size <size>', 'RAM', 2 ** 30)).addOption(modeWithDefault('--mode <m>', 'mode', 0o600))
    const help = program.helpInformation()
    assert.match(help, /\(default: 1GiB\)/)
    assert.match(help, /\(default: 600\)/)
    program.parse([], { from: 'user' })
    assert.equal(program.opts().cacheSize, 2 ** 30)
    assert.equal(program.opts().mode, 0o600)
  })

  it('exits 0 after --help and --version, 2 on a usage error or a missing subcommand', async () => {
    assert.equal(await exitOf(['--help']), 0)
    assert.equal(await exitOf(['--version']), 0)
    assert.equal(await exitOf(['sub', '--help']), 0)
    assert.equal(await exitOf(['--bogus']), 2)
    assert.equal(await exitOf(['sub', '--n']), 2)
    assert.equal(await exitOf([]), 2)
  })
})
