/**
 * Paths listed one a line in a file, or on stdin ("-"), read as they come:
 * a list fed through a pipe is used while it is being written. Blank lines
 * are ignored; a path is taken as it is, leading and trailing spaces aside.
 */
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'

/**
 * Not an async generator: a consumer that gives up while it waits for the
 * next line (tar, when a file fails) must end that wait and let go of the
 * input at once. A generator's return() would wait for the line, and stdin,
 * left open, would keep the process alive until the list ends.
 */
export function readPathList(list: string): AsyncIterableIterator<string> {
  const input = list === '-' ? process.stdin : createReadStream(list, 'utf8')
  const lines = createInterface({ input, crlfDelay: Infinity })
  const it = lines[Symbol.asyncIterator]()
  let open = true
  const close = (): IteratorReturnResult<undefined> => {
    if (open) {
      open = false
      lines.close() // ends a wait for the next line
      input.destroy()
    }
    return { done: true, value: undefined }
  }
  return {
    [Symbol.asyncIterator]() {
      return this
    },
    async next() {
      try {
        for (let r = await it.next(); !r.done && open; r = await it.next()) {
          const path = r.value.trim()
          if (path !== '') return { done: false, value: path }
        }
        return close()
      } catch (err) {
        close()
        throw err
      }
    },
    async return() {
      return close()
    },
  }
}
