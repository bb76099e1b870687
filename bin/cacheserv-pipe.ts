#!/usr/bin/env -S GLIBC_TUNABLES=glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4194304 node --max-semi-space-size=2
// Memory: a 2 MB young generation keeps RSS close to what the cache holds (the data lives in
// Buffers outside the JS heap; a bigger one only held garbage).
// GLIBC_TUNABLES: malloc asks for transparent huge pages (glibc >= 2.35) and serves blocks up to
// 4 MiB from its heap rather than one mmap() each (glibc >= 2.26), so the cache sits in 2 MiB
// pages. A server holding GBs in 4 KiB pages answered 6-11 ms late after idling on a virtual machine; in
// huge pages it answers as fast as an empty one (npm run bench:wake). Other C libraries ignore
// it. It replaces any GLIBC_TUNABLES of the caller's: run `node dist/bin/cacheserv-pipe.js` to
// set your own. Keep this line under 127 bytes: older kernels (< 5.1) cut it there.
import { main } from '../lib/cli/server.js'

await main(process.argv)
