"""List every file under a directory with its size, and time it (interpreter
start-up and imports excluded). Prints {"files", "bytes", "ms"} as JSON.

usage: listing.py server URL PATH | walk DIR | slow DIR PROCS
server: the server's tree of PATH through the Python client. walk: os.walk
and os.stat of every file. slow: walk, after dropping the page, dentry and
inode caches and joining the slow-storage group (PROCS, its cgroup.procs; see
slow_storage.py).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients', 'python'))

from cacheserv_client import Client  # noqa: E402
from slow_storage import go_cold  # noqa: E402


def walk(top):
    files = size = 0
    for here, _dirs, names in os.walk(top):
        for name in names:
            size += os.stat(os.path.join(here, name)).st_size
            files += 1
    return files, size


def tree(url, path):
    client = Client(url)
    try:
        files = size = 0
        for f in client.tree(path):
            files += 1
            size += f['size']
        return files, size
    finally:
        client.close()


def main():
    mode = sys.argv[1]
    if mode == 'slow':
        go_cold(sys.argv[3])
    t = time.perf_counter()
    files, size = tree(sys.argv[2], sys.argv[3]) if mode == 'server' else walk(sys.argv[2])
    print(json.dumps({'files': files, 'bytes': size, 'ms': (time.perf_counter() - t) * 1000}))


if __name__ == '__main__':
    main()
