/**
 * Paths listed one a line in a file, or on stdin ("-"), read as they come:
 * a list fed through a pipe is used while it is being written. Blank lines
 * are ignored; a path is taken as it is, leading and trailing spaces aside.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'

export async function* readPathList(list: string): AsyncGenerator<string> {
  const input = list === '-' ? process.stdin : createReadStream(list, 'utf8')
  const lines = createInterface({ input, crlfDelay: Infinity })
  try {
    for await (const line of lines) {
      const path = line.trim()
      if (path !== '') yield path
    }
  } finally {
    lines.close()
    if (list === '-') process.stdin.destroy() // left unread after a failure, it would keep the process alive
    else input.destroy()
  }
}
