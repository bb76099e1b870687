"""A read-only FUSE view of a directory that waits a fixed time before each
read, like a network mount whose every read is a round trip: latency, not
throughput, is what limits a reader. Reads bypass the kernel's page cache
(direct_io), so every read of every run pays the delay, as a cold mount does.
Requests are served on threads, so reads that overlap wait together.

usage: latency_fs.py SOURCE MOUNTPOINT DELAY_MS
Runs in the foreground until SIGTERM or SIGINT, which unmount it. Needs
/dev/fuse and Debian's python3-fuse; prints "mounted" once the view answers,
and on the way out {"reads", "most_at_once"}: the reads of file bytes it
served, and the most of them that were waiting at one time.
"""
import errno
import json
import os
import sys
import threading
import time

import fuse

fuse.fuse_python_api = (0, 2)


class Tally(object):
    """Reads served, and the most in flight at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reads = 0
        self.now = 0
        self.most = 0

    def enter(self):
        with self.lock:
            self.reads += 1
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1


def make_fs(source, delay, tally):
    class Handle(object):
        """An open file of the source; every read of its bytes sleeps `delay`, then reads."""

        direct_io = True
        keep_cache = False

        def __init__(self, path, flags, *mode):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
                raise OSError(errno.EROFS, 'read-only')
            self.fd = os.open(source + path, os.O_RDONLY | os.O_NOFOLLOW)
            self.size = os.fstat(self.fd).st_size

        def read(self, length, offset):
            # A network client knows the size from the attributes it holds: a read at the end costs no round trip.
            if offset >= self.size:
                return b''
            tally.enter()
            try:
                time.sleep(delay)
                return os.pread(self.fd, length, offset)
            finally:
                tally.leave()

        def fgetattr(self):
            return os.fstat(self.fd)

        def release(self, flags):
            os.close(self.fd)

    class LatencyFS(fuse.Fuse):
        def getattr(self, path):
            return os.lstat(source + path)

        def readlink(self, path):
            return os.readlink(source + path)

        def readdir(self, path, offset):
            for name in ['.', '..'] + os.listdir(source + path):
                yield fuse.Direntry(name)

        def statfs(self):
            return os.statvfs(source)

        def access(self, path, mode):
            if mode & os.W_OK:
                return -errno.EROFS
            if not os.access(source + path, mode):
                return -errno.EACCES

    fs = LatencyFS(dash_s_do='setsingle')
    fs.file_class = Handle
    fs.multithreaded = True
    return fs


def announce(mountpoint, source):
    """Print "mounted" once the mount point shows the source's entries."""
    want = sorted(os.listdir(source))
    for _ in range(500):
        try:
            if os.path.ismount(mountpoint) and sorted(os.listdir(mountpoint)) == want:
                print('mounted', flush=True)
                return
        except OSError:
            pass
        time.sleep(0.02)
    print('not mounted after 10 s', file=sys.stderr, flush=True)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    source, mountpoint, delay_ms = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), float(sys.argv[3])
    tally = Tally()
    fs = make_fs(source, delay_ms / 1000, tally)
    fs.parse([mountpoint, '-f', '-o', 'ro,default_permissions,fsname=latency,subtype=latency'], errex=2)
    threading.Thread(target=announce, args=(mountpoint, source), daemon=True).start()
    fs.main()
    print(json.dumps({'reads': tally.reads, 'most_at_once': tally.most}), flush=True)


if __name__ == '__main__':
    main()
