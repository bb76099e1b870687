/** The package's public surface: what a user composes, and no internals. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as api from '../lib/index.js'

test('exports the server, the client, the composable stages, the codecs and fault injection', () => {
  for (const name of [
    'createServer', 'CacheServer', 'connect', 'Client', 'ReadStream',
    'createRequestParser', 'createPager', 'createFramer', 'createDeframer', 'corrupt',
    'FrameDecoder', 'encodeFrame', 'encodeHeader', 'decodeHeader', 'encodeRequest', 'parseRequestLine',
    'CacheservError', 'ErrorCodes', 'VERSION',
  ]) {
    assert.ok(name in api, `${name} is exported`)
  }
})

test('does not export internals', () => {
  for (const name of ['CommandSource', 'PageSize', 'ReceiveWindow', 'MAX_STALLS', 'prng', 'BlockCache', 'MemoryBudget']) {
    assert.ok(!(name in api), `${name} is internal`)
  }
})
