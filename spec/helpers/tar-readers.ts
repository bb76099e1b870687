/** Python programs that read a tar stream on stdin, for the specs of the CLI's `tar`. */
import { fileURLToPath } from 'node:url'

/** Reads the stream the WebDataset way and prints name, size and sha256 of every member. */
export const READER = `
import hashlib, sys, tarfile
with tarfile.open(fileobj=sys.stdin.buffer, mode='r|') as t:
    for m in t:
        data = t.extractfile(m).read()
        print(m.name, len(data), hashlib.sha256(data).hexdigest(), flush=True)
`

/** The Python client's package, for VERIFIER's first argument. */
export const PYTHON_CLIENT = fileURLToPath(new URL('../../../clients/python', import.meta.url))

/** The Python client's reader: every file as it comes, then "verified" once the manifest matched. */
export const VERIFIER = `
import hashlib, sys
sys.path.insert(0, sys.argv[1])
from cacheserv_client import iter_tar
for name, data in iter_tar(sys.stdin.buffer):
    print(name, len(data), hashlib.sha256(data).hexdigest(), flush=True)
print('verified', flush=True)
`
