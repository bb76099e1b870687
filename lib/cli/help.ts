/** Help text for an ./args.js table, in commander's layout: usage, description, aligned and wrapped sections. */
import { type ArgumentSpec, type CommandSpec, HELP_COMMAND, HELP_OPTION, type OptionSpec, type ProgramSpec, VERSION_OPTION } from './args.js'

type Item = [term: string, description: string]

const argumentTerm = (a: ArgumentSpec) => (a.required ? `<${a.name}>` : `[${a.name}]`)
const optionItem = (o: OptionSpec): Item => [o.flags, o.description]

function commandTerm(c: CommandSpec): string {
  return [c.name, ...(c.options.length > 0 ? ['[options]'] : []), ...c.arguments.map(argumentTerm)].join(' ')
}

/** Help of the program (`command` null) or of one command, for a terminal `width` columns wide. */
export function renderHelp(program: ProgramSpec, command: CommandSpec | null, width = 80): string {
  const usage = command
    ? [program.name, command.name, '[options]', ...command.arguments.map(argumentTerm)].join(' ')
    : `${program.name} [options] [command]`
  const sections: [string, Item[]][] = command
    ? [
        ['Arguments', command.arguments.map((a): Item => [a.name, a.description])],
        ['Options', [...command.options, HELP_OPTION].map(optionItem)],
        // Global options work after the command too, so they belong here.
        ['Global Options', [VERSION_OPTION, ...program.options].map(optionItem)],
      ]
    : [
        ['Options', [VERSION_OPTION, ...program.options, HELP_OPTION].map(optionItem)],
        ['Commands', [...program.commands, HELP_COMMAND].map((c): Item => [commandTerm(c), c.description])],
      ]
  const pad = Math.max(...sections.flatMap(([, items]) => items.map(([term]) => term.length)))
  const out = [`Usage: ${usage}`, '', wrap((command ?? program).description, width, 0)]
  for (const [title, items] of sections) {
    if (items.length === 0) continue
    out.push('', `${title}:`, ...items.map(([term, description]) => `  ${term.padEnd(pad)}  ${wrap(description, width, pad + 4)}`))
  }
  return out.join('\n') + '\n'
}

/** `text` in lines of at most `width` columns, the lines after the first indented by `indent`. */
function wrap(text: string, width: number, indent: number): string {
  const room = width - indent
  if (room < 40) return text // too narrow to be worth wrapping (commander's rule too)
  const lines: string[] = []
  let line = ''
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > room) {
      lines.push(line)
      line = word
    } else {
      line = line === '' ? word : `${line} ${word}`
    }
  }
  lines.push(line)
  return lines.join('\n' + ' '.repeat(indent))
}
