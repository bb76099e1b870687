"""The Python client's side of `npm run bench`: read a big file or many small ones, time it, report JSON.

Timing starts after the interpreter and the connection are up, as for the Node library rows.
  python-read.py big URL PATH          stream PATH through a reused 8 MiB buffer (read_into, ranged)
  python-read.py many URL IN_FLIGHT    read the paths given on stdin with read_many
"""
import json
import os
import sys
import time
from functools import reduce
from operator import xor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients', 'python'))
from cacheserv_client import Client  # noqa: E402

PAGE = 4096  # the bench's xor samples one byte per 4 KiB page


def main():
    mode, url = sys.argv[1], sys.argv[2]
    # Over the socket, as the Node rows it is compared with: on loopback the client would read shared memory.
    c = Client(url, short_circuit=False).connect()
    if mode == 'big':
        path = sys.argv[3]
        size = c.stat(path)['size']
        buf = bytearray(8 << 20)
        mv = memoryview(buf)
        total = x = 0
        t0 = time.perf_counter()
        while total < size:
            n = c.read_into(path, buf, total)
            x = reduce(xor, mv[0:n:PAGE], x)
            total += n
        ms = (time.perf_counter() - t0) * 1000
        print(json.dumps({'bytes': total, 'xor': x, 'ms': ms}))
    else:
        paths = [line.strip() for line in sys.stdin if line.strip()]
        checks = []
        t0 = time.perf_counter()
        for path, data in c.read_many(paths, in_flight=int(sys.argv[3])):
            checks.append([path, len(data), reduce(xor, data[0::PAGE], 0)])
        ms = (time.perf_counter() - t0) * 1000
        print(json.dumps({'files': len(checks), 'ms': ms, 'checks': checks}))
    c.close()


if __name__ == '__main__':
    main()
