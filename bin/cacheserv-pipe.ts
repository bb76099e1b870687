#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 UV_THREADPOOL_SIZE=8 node --max-semi-space-size=2
// Memory: a 2 MB young generation keeps RSS close to what the cache holds (the data lives in
// Buffers outside the JS heap; a bigger one only held garbage).
// GLIBC_TUNABLES: every allocation of 128 KiB or more, so every cache block, gets its own mmap()
// and goes back to the kernel when freed. glibc's default threshold rises with each such free
// until blocks land on the brk heap, which returns memory only from its top: RSS then stayed at
// its peak after load, and a small mapping above the heap left a fresh server at 2x the cached
// bytes. Other C libraries ignore it.
// UV_THREADPOOL_SIZE: reads of blocks the cache misses run on libuv's thread pool, so its size is
// how many overlap. Node's 4 held a cold server to 4 round trips at a time on a root with latency
// per read (a network mount), where one request's misses load 8 at a time. More than 8 overlapped
// no better for two DataLoader workers and cost a tenth more CPU per miss on page-cached files
// (each job wakes a thread; more threads than cores contend). It must be set before Node starts:
// its module loader uses the pool before any of our code runs.
// Both replace the caller's: run `node dist/bin/cacheserv-pipe.js` to set your own. Keep this
// line under 127 bytes: older kernels (< 5.1) cut it there.
import { main } from '../lib/cli/server.js'

await main(process.argv)
