#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 node --max-semi-space-size=2
// Memory: a 2 MB young generation keeps RSS close to what the cache holds (the data lives in
// Buffers outside the JS heap; a bigger one only held garbage).
// GLIBC_TUNABLES: every allocation of 128 KiB or more, so every cache block, gets its own mmap()
// and goes back to the kernel when freed. glibc's default threshold rises with each such free
// until blocks land on the brk heap, which returns memory only from its top: RSS then stayed at
// its peak after load, and a small mapping above the heap left a fresh server at 2x the cached
// bytes. Other C libraries ignore it. It replaces any GLIBC_TUNABLES of the caller's: run
// `node dist/bin/cacheserv-pipe.js` to set your own. Keep this line under 127 bytes: older
// kernels (< 5.1) cut it there.
import { main } from '../lib/cli/server.js'

await main(process.argv)
