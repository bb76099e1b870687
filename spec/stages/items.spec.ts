/** isTerminal: which parts end a request (the pager and the source forget the request after them). */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type Item, isTerminal } from '../../lib/stages/items.js'

test('END, RESULT and ERROR end a request; START, DATA, PROGRESS, RESYNC and HELLO do not', () => {
  const kinds: Item['kind'][] = ['start', 'data', 'end', 'result', 'progress', 'resync', 'error', 'hello']
  assert.deepEqual(kinds.filter(isTerminal), ['end', 'result', 'error'])
})
