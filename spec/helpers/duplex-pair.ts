/** Two connected in-memory Duplexes (Node 20 has no stream.duplexPair). */
import { Duplex } from 'node:stream'

export function duplexPair(): [Duplex, Duplex] {
  let a!: Duplex
  let b!: Duplex
  const make = (other: () => Duplex) =>
    new Duplex({
      allowHalfOpen: true,
      read() {},
      write(chunk, _enc, cb) {
        other().push(chunk)
        cb()
      },
      final(cb) {
        other().push(null)
        cb()
      },
    })
  a = make(() => b)
  b = make(() => a)
  return [a, b]
}
