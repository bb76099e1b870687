/**
 * What flows between the source and the pager: tagged parts of responses, not
 * yet cut into pages or numbered. The pager turns them into frames.
 */
export type Part =
  | { kind: 'start'; body: unknown }
  | { kind: 'data'; chunk: Buffer }
  | { kind: 'end'; body: unknown }
  | { kind: 'result'; body: unknown }

export type Item =
  | ({ id: number } & Part)
  | { id: number; kind: 'error'; body: { code: string; message: string } }
  | { id: 0; kind: 'hello'; body: unknown }

/** Parts that end a request. */
export function isTerminal(kind: Item['kind']): boolean {
  return kind === 'end' || kind === 'result' || kind === 'error'
}
