#!/usr/bin/env node
// The shipped bin is dist/bin/cacheserv-pipe-client.cjs, this file bundled into one
// (scripts/bundle-client.mjs): CommonJS, so no top-level await. main() reports its own
// errors; anything else is a bug, which Node prints as an unhandled rejection (exit 1).
// If main() never settles (the event loop ran dry under it), exit 13 as a top-level await
// would, never 0: for `read > file` that would present a partial file as whole.
import { main } from '../lib/cli/client.js'

let settled = false
void main(process.argv).finally(() => {
  settled = true
})
process.on('exit', () => {
  if (!settled) process.exitCode = 13
})
