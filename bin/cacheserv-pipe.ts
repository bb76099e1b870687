#!/usr/bin/env -S MALLOC_ARENA_MAX=2 GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4194304 node --max-semi-space-size=2
// Memory: a 2 MB young generation and two malloc arenas keep RSS close to what the cache
// holds (the data lives in Buffers outside the JS heap; more only held garbage).
// GLIBC_TUNABLES (glibc >= 2.35, ignored elsewhere): malloc asks for transparent huge pages, and
// serves blocks up to 4 MiB from its heap rather than one mmap() each, so the cache sits in
// 2 MiB pages. A server holding GBs in 4 KiB pages answered 6-8 ms late after idling on our
// VMs; in huge pages it answers as fast as an empty one (npm run bench:wake). This replaces
// any GLIBC_TUNABLES of the caller's; run `node dist/bin/cacheserv-pipe.js` to set your own.
import { main } from '../lib/cli/server.js'

await main(process.argv)
