#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2
// Memory: a 2 MB young generation and two malloc arenas keep RSS close to what the cache
// holds (the data lives in Buffers outside the JS heap; more only held garbage).
import { main } from '../lib/cli/server.js'

await main(process.argv)
