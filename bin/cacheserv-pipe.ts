#!/usr/bin/env -S node --max-semi-space-size=4
// A small young generation keeps the heap (and so RSS) close to what the cache holds;
// the big data lives in Buffers outside the heap anyway.
import { main } from '../lib/cli/server.js'

await main(process.argv)
