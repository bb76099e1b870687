#!/usr/bin/env node
// The shipped bin is dist/bin/cacheserv-pipe-client.cjs, this file bundled into one
// (scripts/bundle-client.mjs): CommonJS, so no top-level await. main() reports its own
// errors; anything else is a bug, which Node prints as an unhandled rejection (exit 1).
import { main } from '../lib/cli/client.js'

void main(process.argv)
