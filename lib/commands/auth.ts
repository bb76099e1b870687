/**
 * auth {token}: the first request on a server started with a token; RESULT
 * {auth: "ok"}, or EAUTH on id 0 and the connection closes. Anywhere else it
 * is refused: the connection is open already, or needs no token.
 */
import type { ControlSpec } from './context.js'

export const auth: ControlSpec = {
  control: (id, args, connection) => connection.authenticate(id, args.token),
}
