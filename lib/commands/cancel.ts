/**
 * cancel {id}: stop that request; it ends with ECANCELED (an upload answers
 * for itself: ECANCELED, or its RESULT if its file was already being put in
 * place). A request that has finished is left as it is. The cancel line
 * itself gets no answer.
 */
import type { ControlSpec } from './context.js'

export const cancel: ControlSpec = {
  control: (id, _args, connection) => connection.cancel(id),
}
