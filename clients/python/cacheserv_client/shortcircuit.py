"""Short-circuit reads: a client on the server's host reads cached blocks
straight from the server's shared-memory store (PROTOCOL.md, ``locate``).

The server answers ``locate`` with where each file's blocks are (slab files
under its store directory, offsets, lengths, crc32s) and holds them under a
grant until the next ``locate`` releases it, the connection ends, or ``ttl`` ms
pass; a slot is not reused while it is held. The slab files are mode 0400 in a
0700 directory of the server's user: readable here only by that user, and
written only by the server. So the bytes read are the ones the server checked
when it cached them, unless the read finished after the grant's time; then
they are thrown away and asked for again.
"""

import os
import time
import zlib

#: Seconds before a grant's end after which bytes read under it are not trusted.
TTL_MARGIN = 1.0


class StaleGrant(Exception):
    """The grant ran out before the bytes were read: they may be another block's."""


class ShmReader(object):
    """Reads located blocks from the slab files, each opened once."""

    def __init__(self, verify=False):
        self.verify = verify
        self._fds = {}
        self._pid = os.getpid()

    def read(self, answer, entry, granted_at):
        """The bytes of one located file of a ``locate`` answer (``entry['blocks']`` not None).
        Raises StaleGrant when the grant (asked for at ``granted_at``, time.monotonic())
        ended before the read did, and ValueError when ``verify`` finds a crc mismatch."""
        blocks = entry['blocks']
        slabs = answer['slabs']
        directory = answer['dir']
        # A range (``length``) starts ``skip`` bytes into its first block.
        want = entry.get('length', entry['size'])
        skip = entry.get('skip', 0)
        parts = []
        got = 0
        for s, offset, length, crc in blocks:
            if self.verify:
                part = self._pread(directory, slabs[s], length, offset)
                self._check(part, crc, entry['path'])
                part = part[skip:skip + want - got]  # the whole block when the range covers it (no copy)
            else:
                n = min(length - skip, want - got)
                part = self._pread(directory, slabs[s], n, offset + skip) if n > 0 else b''
            parts.append(part)
            got += len(part)
            skip = max(0, skip - length)
        data = parts[0] if len(parts) == 1 else b''.join(parts)
        if time.monotonic() - granted_at > answer['ttl'] / 1000.0 - TTL_MARGIN:
            raise StaleGrant(entry['path'])
        if len(data) != want:
            raise ValueError('%s: %d bytes located, %d read' % (entry['path'], want, len(data)))
        return data

    def read_into(self, answer, entry, granted_at, mv):
        """Like ``read``, but into the writable memoryview ``mv`` (at least the entry's
        length): no bytes object is made. Returns the bytes read."""
        want = entry.get('length', entry['size'])
        if len(mv) < want:
            raise ValueError('%s: %d bytes located, room for %d' % (entry['path'], want, len(mv)))
        skip = entry.get('skip', 0)
        got = 0
        for s, offset, length, crc in entry['blocks']:
            n = min(length - skip, want - got)
            if n > 0:
                fd = self._fd(answer['dir'], answer['slabs'][s])
                if self.verify:
                    block = os.pread(fd, length, offset)
                    self._check(block, crc, entry['path'])
                    mv[got:got + n] = memoryview(block)[skip:skip + n]
                elif os.preadv(fd, [mv[got:got + n]], offset + skip) != n:
                    raise ValueError('%s: short read at %d' % (answer['slabs'][s], offset + skip))
                got += n
            skip = max(0, skip - length)
        if time.monotonic() - granted_at > answer['ttl'] / 1000.0 - TTL_MARGIN:
            raise StaleGrant(entry['path'])
        if got != want:
            raise ValueError('%s: %d bytes located, %d read' % (entry['path'], want, got))
        return got

    def close(self):
        if self._pid == os.getpid():
            for fd in self._fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fds.clear()

    def _fd(self, directory, name):
        key = (directory, name)
        fd = self._fds.get(key)
        if fd is None:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | getattr(os, 'O_CLOEXEC', 0))
            self._fds[key] = fd
        return fd

    def _pread(self, directory, name, length, offset):
        data = os.pread(self._fd(directory, name), length, offset)
        if len(data) != length:
            raise ValueError('%s: short read at %d' % (name, offset))
        return data

    def _check(self, data, crc, path):
        if self.verify and zlib.crc32(data) & 0xffffffff != crc:
            raise ValueError('%s: a block failed its crc32 in shared memory' % path)
