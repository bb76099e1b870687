/** renderHelp: commander's help layout for an args.ts table (usage, description, aligned sections), wrapped to the terminal. */
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ProgramSpec } from '../../lib/cli/args.js'
import { CLIENT } from '../../lib/cli/client-args.js'
import { renderHelp } from '../../lib/cli/help.js'

const PROGRAM = {
  name: 'prog',
  description: 'Does things.',
  options: [{ flags: '--server <addr>', description: 'where the server is' }],
  commands: [
    { name: 'read', description: 'read a file', arguments: [{ name: 'file', description: 'the file', required: true }], options: [{ flags: '--offset <n>', description: 'first byte' }] },
    { name: 'stats', description: 'print counters', arguments: [], options: [] },
    { name: 'ls', description: 'list', arguments: [{ name: 'dir', description: 'a directory' }], options: [] },
  ],
} satisfies ProgramSpec

/** `n` words of six characters: word01 word02 … */
const words = (n: number) => Array.from({ length: n }, (_, i) => `word${String(i + 1).padStart(2, '0')}`)

describe('renderHelp', () => {
  it('the program help: usage, description, options with version first and help last, then the commands with their arguments', () => {
    assert.equal(
      renderHelp(PROGRAM, null),
      [
        'Usage: prog [options] [command]',
        '',
        'Does things.',
        '',
        'Options:',
        '  -V, --version          output the version number',
        '  --server <addr>        where the server is',
        '  -h, --help             display help for command',
        '',
        'Commands:',
        '  read [options] <file>  read a file',
        '  stats                  print counters',
        '  ls [dir]               list',
        '  help [command]         display help for command',
        '',
      ].join('\n'),
    )
  })

  it('a command help: its usage, arguments and options, then the global options, which work after it too', () => {
    assert.equal(
      renderHelp(PROGRAM, PROGRAM.commands[0]),
      [
        'Usage: prog read [options] <file>',
        '',
        'read a file',
        '',
        'Arguments:',
        '  file             the file',
        '',
        'Options:',
        '  --offset <n>     first byte',
        '  -h, --help       display help for command',
        '',
        'Global Options:',
        '  -V, --version    output the version number',
        '  --server <addr>  where the server is',
        '',
      ].join('\n'),
    )
  })

  it('a command without arguments has no Arguments section; an optional argument is in brackets', () => {
    const stats = renderHelp(PROGRAM, PROGRAM.commands[1])
    assert.match(stats, /^Usage: prog stats \[options\]\n/)
    assert.doesNotMatch(stats, /Arguments:/)
    assert.match(renderHelp(PROGRAM, PROGRAM.commands[2]), /^Usage: prog ls \[options\] \[dir\]\n\nlist\n\nArguments:\n {2}dir +a directory\n/)
  })

  it('wraps a long description under its own column, no line wider than the terminal', () => {
    const program: ProgramSpec = { name: 'p', description: 'x', options: [], commands: [{ name: 'go', description: words(14).join(' '), arguments: [], options: [] }] }
    // The widest term, 'help [command]', is 14 wide: descriptions start at column 18, leaving 42 at width 60.
    const text = renderHelp(program, null, 60)
    const indent = ' '.repeat(18)
    assert.ok(text.includes(`  go              ${words(6).join(' ')}\n${indent}${words(12).slice(6).join(' ')}\n${indent}word13 word14\n`), text)
    for (const line of text.split('\n')) assert.ok(line.length <= 60, `too wide: ${line}`)
  })

  it('does not wrap when fewer than 40 columns would be left for descriptions', () => {
    const program: ProgramSpec = { name: 'p', description: 'x', options: [], commands: [{ name: 'go', description: words(14).join(' '), arguments: [], options: [] }] }
    assert.ok(renderHelp(program, null, 57).includes(`  go              ${words(14).join(' ')}\n`))
  })

  it('wraps the description at the top from the first column; a word longer than a line is kept whole', () => {
    const long = 'x'.repeat(70)
    const program: ProgramSpec = { name: 'p', description: `${long} ${words(9).join(' ')} ${long} end`, options: [], commands: [] }
    const lines = renderHelp(program, null, 60).split('\n')
    assert.deepEqual(lines.slice(2, 8), [long, words(8).join(' '), 'word09', long, 'end', ''])
  })

  describe('with the client\'s table', () => {
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
