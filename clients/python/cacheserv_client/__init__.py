"""Python client of cacheserv-pipe: standard library only (Python >= 3.9).

Install with ``pip install --no-build-isolation ./clients/python``::

    from cacheserv_client import Client

    with Client('tcp://127.0.0.1:7070') as c:
        data = c.read('train/shard-0001.tar')
        with c.open('train/shard-0001.tar') as f:      # seekable, read-only
            tar = tarfile.open(fileobj=f)

It speaks wire protocol version 1 (PROTOCOL.md in the cacheserv-pipe
repository): newline-delimited JSON requests, binary frames back, each with a
header CRC-32 and a payload CRC-32 or MD5. Every page is verified before a
byte of it is used; a damaged, lost or duplicated page is asked for again
(NACK) and the server resends it (RESYNC), exactly as the Node client does.

One Client is one connection. Many requests can be in flight on it
(``read_many``). The client is synchronous: it reads the socket only while a
call waits for an answer, so a consumer that stops calling stops the server
(TCP backpressure). Calls are serialised by a lock, so a Client may be shared
by threads, but one Client per worker thread is faster.

Fork-safe: a Client used in a process other than the one that connected it
(a PyTorch DataLoader worker, multiprocessing) forgets the inherited
connection and opens its own. A Client also pickles as its settings only, so
it can be handed to spawned workers.

Reconnects: when the server has closed the connection while no request was in
flight (``--idle-timeout`` during a pause between epochs, a restart), the next
call opens a new one and goes on. Retries: a read, stat, ls or stats whose
connection dies before it is answered (a server restarted or killed mid-epoch)
is sent again on a new connection after 0.1, 0.3, 1 and 3 s
(``retry_delays``), then fails with ECLOSED. Writes, warm and evict are never
repeated.
"""

import gc
import hashlib
import io
import json
import os
import re
import socket
import stat as _stat
import struct
import sys
import threading
import time
import zlib
from collections import deque

from .shortcircuit import ShmReader, StaleGrant

__all__ = ['Client', 'RemoteFile', 'CacheservError', 'iter_tar', 'TAR_MANIFEST', 'parse_address', 'DEFAULT_ADDRESS', 'PROTOCOL_VERSION']
__version__ = '0.1.0'

DEFAULT_ADDRESS = 'tcp://127.0.0.1:7070'
PROTOCOL_VERSION = 1

# --- wire constants (PROTOCOL.md "Frames") ---------------------------------

MAGIC = 0xC550
_MAGIC_BYTES = b'\xc5\x50'
HEADER_SIZE = 24
MAX_PAYLOAD = 16 * 1024 * 1024
#: magic, version, type, id, seq, length, checksum id, epoch, reserved, header crc
_HEADER = struct.Struct('>HBBIIIBBHI')
_U32 = struct.Struct('>I')
_DIGEST_SIZE = (0, 4, 16)  # by checksum id: none, crc32, md5

HELLO, START, DATA, END, RESULT, ERROR, RESYNC, PROGRESS = 1, 2, 3, 4, 5, 6, 7, 8

#: NACKs in a row for one request, with no frame delivered in between, before the client gives up (ECORRUPT).
MAX_STALLS = 32
#: Bytes received at once once a connection brings data in bulk (a recv that fills all the room
#: it was given); grows when a frame is larger.
RECEIVE_BUFFER = 4 * 1024 * 1024
#: The receive buffer a connection starts with: room for a few default pages. Zeroing 4 MiB takes a
#: few ms, which a process that only lists and reads small files (a DataLoader worker starting
#: up) would pay before its first request.
FIRST_BUFFER = 1024 * 1024
#: Reads of more than one page are received into scratch buffers the Client keeps and reuses (so
#: a read() costs one fresh allocation, its result, instead of two), up to this many bytes of
#: them in all; what does not fit is assembled from its pages.
SCRATCH_MAX = 64 * 1024 * 1024
#: Progress timeouts in a row, each answered by NACKing every waiting request; the next one is ETIMEDOUT.
SILENT_TIMEOUTS = 4
#: Seconds waited before each new attempt of a request its connection died under (``retry_delays``).
RETRY_DELAYS = (0.1, 0.3, 1.0, 3.0)
#: Requests that change nothing on the server, so may be sent again (not write, warm, evict).
#: Bytes of paths one ``warm`` request of a list carries (request lines are bounded: --max-request).
_WARM_BATCH_BYTES = 32 * 1024

_REPEATABLE = frozenset(('read', 'stat', 'ls', 'stats', 'tree', 'locate'))
#: Ranges ``read`` takes from shared memory on the server's host, at least (smaller ones: the socket).
SHARED_RANGE = 1024 * 1024
#: Most paths ``read_many`` asks for in one ``locate`` (it asks for ``in_flight`` at a time).
LOCATE_BATCH = 1024
#: Paths ``read_many`` asks for in one ``readv`` over the socket, at most, and the bytes of their JSON.
READV_BATCH = 256
_READV_BATCH_BYTES = 32 * 1024
#: A readv entry's header (PROTOCOL.md, "readv"): index, kind (0 file, 1 error), size, mtimeMs, length.
_ENTRY = struct.Struct('<IIddd')
#: Errors that mean the connection died (or the server is going away), not that the request failed.
_RETRIED = frozenset(('ECLOSED', 'ESHUTDOWN'))
#: Errors after which a Client with ``fallback_root`` reads the files itself.
_UNREACHABLE = frozenset(('ECLOSED', 'ECONNECT', 'ESHUTDOWN'))
#: Seconds a Client that fell back to ``fallback_root`` reads the files before it tries the server again.
FALLBACK_SECONDS = 30.0

_crc32 = zlib.crc32
_md5 = hashlib.md5


class CacheservError(Exception):
    """An error with a stable code: the server's (ENOENT, EACCES, EISDIR, ERANGE, ...)
    or the client's own (ECONNECT, EPROTO, ECORRUPT, ETIMEDOUT, ECLOSED)."""

    def __init__(self, code, message, path=None):
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.path = path

    def __str__(self):
        if self.path is not None:
            return '%s: %s (%s)' % (self.code, self.message, self.path)
        return '%s: %s' % (self.code, self.message)


# --- addresses --------------------------------------------------------------


def parse_address(text):
    """``tcp://HOST:PORT``, ``HOST:PORT``, ``[::1]:PORT``, a bare ``PORT`` (on 127.0.0.1)
    or ``unix:/path``. Returns ``('unix', path)`` or ``('tcp', host, port)``."""
    s = str(text).strip()
    if s.startswith('unix:'):
        path = re.sub(r'^//(?=/)', '', s[5:])  # accept unix:///path too
        if not path:
            raise CacheservError('EBADREQ', 'address %r names no socket path' % (text,))
        return ('unix', path)
    rest = s[6:] if s.startswith('tcp://') else s
    if re.fullmatch(r'[0-9]+', rest):
        return ('tcp', '127.0.0.1', _port(rest, text))
    m = re.fullmatch(r'\[([^\]]+)\]:([0-9]+)', rest) or re.fullmatch(r'([^:\[\]/]+):([0-9]+)', rest)
    if not m:
        raise CacheservError('EBADREQ', 'cannot parse address %r; use tcp://HOST:PORT, HOST:PORT or unix:/path' % (text,))
    return ('tcp', m.group(1), _port(m.group(2), text))


def _port(digits, text):
    n = int(digits)
    if n > 65535:
        raise CacheservError('EBADREQ', 'port out of range in %r' % (text,))
    return n


def _format_address(addr):
    if addr[0] == 'unix':
        return 'unix:' + addr[1]
    host = addr[1]
    return 'tcp://[%s]:%d' % (host, addr[2]) if ':' in host else 'tcp://%s:%d' % (host, addr[2])


# --- requests in flight -----------------------------------------------------

_DELIVER, _DROP, _RESYNCED, _UNREADABLE, _LOST = range(5)


class _Request(object):
    """One request in flight: its receive window (PROTOCOL.md, the reverse path,
    rules 1-4 and 7) and what it has received so far."""

    __slots__ = (
        'id', 'op', 'is_read', 'seq', 'offset', 'nacks', 'resync', 'awaiting', 'stalls',
        'done', 'error', 'exc', 'result', 'info', 'dest', 'chunks', 'scratch', 'expect', 'progress', 'path',
        'entries',
    )

    def __init__(self, rid, op, is_read, path=None):
        self.id = rid
        self.op = op
        self.is_read = is_read
        self.path = path
        self.seq = 0  # next frame to deliver
        self.offset = 0  # DATA bytes delivered
        self.nacks = 0
        self.resync = 0
        self.awaiting = False
        self.stalls = 0
        self.done = False
        self.error = None  # a CacheservError that ended the request
        self.exc = None  # an exception raised by a progress callback
        self.result = None
        self.info = None  # START of a read
        # Where a read's verified bytes go: a caller's memoryview (read_into), a scratch buffer of
        # the client's (scratch; copied out once at END), or a list of pages joined at END.
        self.dest = None
        self.scratch = None
        self.chunks = None
        self.expect = None  # (size, mtimeMs) a read must match (RemoteFile)
        self.progress = None
        self.entries = None  # a readv's _Entries

    def accept(self, ftype, seq, epoch, intact, payload):
        """The receive window: deliver, drop, the resend begins, or a NACK is due."""
        # The header is verified even when the payload is not, so its epoch and seq can be trusted:
        # a frame of the attempt we asked for means the resend has begun.
        ours = self.awaiting and epoch == (self.resync & 0xFF)
        if ftype == RESYNC:
            if not ours:
                return _DROP
            if intact:
                try:
                    r = json.loads(bytes(payload)).get('resync')
                except (ValueError, AttributeError):
                    r = None
                if r != self.resync:
                    return _DROP
            self.awaiting = False
            self.seq = seq
            return _RESYNCED
        if ours:
            # The RESYNC was lost: this frame of the resend begins it, and is judged like any other.
            self.awaiting = False
        if ftype == ERROR:
            if intact:
                return _DELIVER  # the sender's last word, whatever came before
            if not self.awaiting and epoch == (self.resync & 0xFF):
                return _UNREADABLE
        if self.awaiting or seq < self.seq:
            return _DROP  # discarding until the resend, or a duplicate
        if seq > self.seq or not intact:
            return _LOST
        self.seq = seq + 1
        self.stalls = 0
        return _DELIVER

    def lost(self):
        """Something of this request may be lost: a NACK from the first frame not delivered."""
        self.awaiting = True
        self.nacks += 1
        self.stalls += 1
        self.resync += 1
        return {'seq': self.seq, 'offset': self.offset, 'resync': self.resync}

    def take(self):
        if self.exc is not None:
            raise self.exc
        if self.error is not None:
            raise self.error
        return self.result


def _json(payload, what):
    try:
        return json.loads(bytes(payload))
    except ValueError:
        raise CacheservError('EPROTO', '%s carries invalid JSON' % what)


def _error_from(payload, path=None):
    try:
        body = json.loads(bytes(payload))
        return CacheservError(str(body['code']), str(body.get('message', '')), path)
    except (ValueError, KeyError, TypeError):
        return CacheservError('EPROTO', 'server sent an unreadable error frame', path)


# --- the client -------------------------------------------------------------


class Client(object):
    """A connection to a cacheserv-pipe server.

    ``addr``: ``tcp://host:port``, ``host:port``, ``[::1]:port``, a bare port or
    ``unix:/path``; default ``$CACHESERV_SERVER``, else ``tcp://127.0.0.1:7070``.
    ``timeout``: seconds to connect and receive the server's HELLO.
    ``progress_timeout``: seconds without a byte, while a call waits for an
    answer, after which every waiting request is asked for again; after 5 such
    timeouts in a row the requests fail with ETIMEDOUT.

    The connection opens on first use (or with ``connect()``); after it is
    lost, requests in flight fail (ECLOSED, ETIMEDOUT, ...) and the next call
    opens a new one. A connection the server closed while no request was in
    flight (its idle timeout, a restart) is noticed before the next request is
    sent, which then goes out on a new connection (authenticated again with the
    same token), as does a request on a connection that is about to reach the
    server's idle timeout: a pause between epochs costs a reconnect, not an
    error. ``close()`` ends it for good.

    ``retry_delays``: when the connection dies (ECLOSED), or the server shuts
    down (ESHUTDOWN), before a ``read``, ``read_into``, ``read_many`` read,
    ``RemoteFile`` range, ``stat``, ``ls`` or ``stats`` is answered, the call
    is made again on a new connection after each of these waits (seconds) in
    turn; once they are spent it fails with the last error (ECLOSED, with the
    connect error as ``__cause__``). A read is asked for again whole: its bytes
    reach you only once all arrived, so none is delivered twice. ``()`` or
    None turns this off. A Client that has never connected fails with
    ECONNECT at once (a wrong address is not waited for).

    ``fallback_root``: a local directory holding the same files as the server's
    root (the same tree, mounted here). When the server cannot be reached
    (ECONNECT, or ECLOSED once the retries are spent), ``read``,
    ``read_into`` and ``ls`` read that directory instead, with a warning on
    stderr the first time; for the next 30 s (``FALLBACK_SECONDS``) they go
    there directly, then try the server again.

    ``short_circuit``: on the server's host (a unix socket or loopback, HELLO
    ``shm``), ``read_many`` and ``read_batch`` ask the server where a batch of
    files' cached blocks are (``in_flight`` of them, or the whole batch, per
    request) and read them from its shared
    memory, without the bytes crossing the socket; files it cannot place there
    (under 16 KiB) are read over the socket, pipelined. False always reads over
    the socket.
    ``verify``: check each block read from shared memory against the crc32
    the server computed when it cached it (costs about as much as the read).
    """

    def __init__(self, addr=None, token=None, timeout=10.0, progress_timeout=5.0, retry_delays=RETRY_DELAYS, fallback_root=None,
                 short_circuit=True, verify=False):
        if addr is None:
            addr = os.environ.get('CACHESERV_SERVER') or DEFAULT_ADDRESS
        self.address = str(addr)
        self._addr = parse_address(self.address)
        # Sent (``auth``) on every connection to a server whose HELLO asks for it, reconnects included.
        self.token = token
        self.timeout = float(timeout)
        self.progress_timeout = float(progress_timeout)
        self.retry_delays = tuple(float(d) for d in (retry_delays or ()))
        self.fallback_root = None if fallback_root is None else os.fspath(fallback_root)
        self.short_circuit = bool(short_circuit)
        self.verify = bool(verify)
        #: NACKs sent, times the frame boundary was lost, progress timeouts: over this Client's life.
        self.nacks = 0
        self.lost_sync = 0
        self.timeouts = 0
        self._init_state()

    def _init_state(self):
        self._lock = threading.RLock()
        self._closed = False
        self._sock = None
        self._pid = None
        self._hello = None
        self._reqs = {}
        self._next_id = 1
        self._silent = 0
        self._buf = bytearray(0)  # the receive buffer, allocated on connect
        self._mv = memoryview(self._buf)
        self._bulk = False  # a recv filled the buffer: it grows to RECEIVE_BUFFER
        self._start = 0
        self._end = 0
        self._hunting = False
        self._scratch_free = []  # scratch buffers not lent to a read
        self._scratch_total = 0  # bytes of scratch buffers, lent or not
        self._last_io = 0.0  # time.monotonic() when a byte last moved either way
        self._requested = False  # a request line went out on this connection
        self._authenticating = False
        self._gone = None  # why the last connection ended (the message), once one has
        self._fallback_until = 0.0  # time.monotonic() until which reads go to fallback_root
        self._warned = False  # the fallback warning was printed
        self._shm = None  # the ShmReader, once a short-circuit read was made
        self._grant = None  # the server's grant of the last locate, released by the next one

    # pickling: settings only; the copy connects on first use
    def __getstate__(self):
        return {'address': self.address, 'token': self.token, 'timeout': self.timeout, 'progress_timeout': self.progress_timeout,
                'retry_delays': self.retry_delays, 'fallback_root': self.fallback_root,
                'short_circuit': self.short_circuit, 'verify': self.verify}

    def __setstate__(self, state):
        self.__init__(state['address'], state['token'], state['timeout'], state['progress_timeout'],
                      state.get('retry_delays', RETRY_DELAYS), state.get('fallback_root'),
                      state.get('short_circuit', True), state.get('verify', False))

    def __repr__(self):
        return '<cacheserv Client %s%s>' % (self.address, ' closed' if self._closed else '')

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- public API ---

    @property
    def hello(self):
        """What the server announced: ``{protocol, server, checksum, pageSize}``."""
        with self._guard():
            self._connection()
            return dict(self._hello)

    def connect(self):
        """Open the connection now (otherwise it opens on first use). Returns self."""
        with self._guard():
            self._connection()
        return self

    def close(self):
        """Close the connection; requests still in flight fail with ECLOSED."""
        with self._guard():
            self._closed = True
            self._drop(CacheservError('ECLOSED', 'client closed'))
            if self._shm is not None:
                self._shm.close()

    @property
    def closed(self):
        return self._closed

    def read(self, path, offset=0, length=None):
        """The bytes of a file, or of the range ``[offset, offset + length)`` clipped to its end.
        On the server's host a range of ``SHARED_RANGE`` bytes or more (a tar shard's
        readahead, say) comes from the server's shared memory (see ``short_circuit``)."""
        if length is not None and length >= SHARED_RANGE and self._short_circuit_on():
            return self._located([{'path': os.fsdecode(path), 'offset': offset, 'length': length}])[0].get()
        return self._read_remote(path, offset, length)

    def read_batch(self, paths):
        """The bytes of each path, in order, as a list: on the server's host one round trip
        for a batch (short-circuit), else reads pipelined on the connection. Raises the
        first failed path's CacheservError."""
        paths = list(paths)
        return [data for _, data in self.read_many(paths, in_flight=max(1, min(len(paths), LOCATE_BATCH)))]

    def _read_remote(self, path, offset=0, length=None):
        def call():
            req = self._read_request(path, offset, length)
            self._wait(req)
            return req.take()
        return self._or_fallback(lambda: self._retrying(call), lambda: _local_read(self._local(path), offset, length))

    def read_into(self, path, buffer, offset=0):
        """Read ``path`` from ``offset`` into a writable buffer (bytearray, memoryview, numpy
        array, ...), at most ``len(buffer)`` bytes. Returns the number of bytes read. On the
        server's host a buffer of ``SHARED_RANGE`` bytes or more is filled from the server's
        shared memory."""
        mv = memoryview(buffer).cast('B')
        if len(mv) >= SHARED_RANGE and self._short_circuit_on():
            got = self._located_into(path, mv, offset)
            if got is not None:
                return got
        return self._read_into_remote(path, mv, offset)

    def _read_into_remote(self, path, mv, offset, expect=None):

        def call():
            req = self._read_request(path, offset, len(mv), dest=mv, expect=expect)
            self._wait(req)
            return req.take()

        def local():
            data = _local_read(self._local(path), offset, len(mv))
            mv[:len(data)] = data
            return len(data)
        return self._or_fallback(lambda: self._retrying(call), local)

    def open(self, path, readahead=256 * 1024):
        """A read-only, seekable binary file object over ``path`` (``io.RawIOBase``)."""
        return RemoteFile(self, path, readahead)

    def read_many(self, paths, in_flight=8):
        """Yield ``(path, bytes)`` for each path, in order, keeping up to ``in_flight``
        reads pipelined on this connection (the server runs up to 32 at once per
        connection). A path may also be a ``(path, offset, length)`` range (``length``
        None: to the end), yielded as given with its bytes. A failed read raises its
        CacheservError (with ``.path``); requests still in flight are cancelled when
        the generator is closed or fails."""
        if in_flight < 1:
            raise ValueError('in_flight must be at least 1')
        if not self._short_circuit_on():
            return self._read_many_remote(paths, in_flight)
        return self._read_many_located(paths, in_flight)

    def _read_many_located(self, paths, in_flight):
        it = iter(paths)
        while True:
            batch = []
            for p in it:
                batch.append(p)
                if len(batch) == min(in_flight, LOCATE_BATCH):
                    break
            if not batch:
                return
            whole = [p for p in batch if isinstance(p, (str, bytes, os.PathLike))]
            if len(whole) < len(batch):
                # Ranges: over the socket, pipelined.
                for item in self._read_many_remote(batch, in_flight):
                    yield item
                continue
            for p, outcome in zip(batch, self._located(batch)):
                yield p, outcome.get()

    def _short_circuit_on(self):
        """Short-circuit reads are on and this connection may make them (HELLO ``shm``)."""
        if not self.short_circuit or self._falling_back():
            return False
        try:
            with self._guard():
                self._connection()
                return bool(self._hello.get('shm'))
        except CacheservError:
            return False

    def _located(self, paths):
        """One ``locate`` for ``paths`` (releasing the last grant), then each file read from
        shared memory, or over the socket when the server could not place it there or the
        grant ran out first: an _Outcome per path, in order."""
        with self._guard():
            release = [] if self._grant is None else [self._grant]
            self._grant = None
            granted_at = time.monotonic()
            answer = self.request('locate', paths=[p if isinstance(p, dict) else os.fsdecode(p) for p in paths], release=release)
            self._grant = answer.get('lease')
            if self._shm is None:
                self._shm = ShmReader(self.verify)
            shm = self._shm
        out = []
        remote = []  # indexes of the files to read over the socket
        for entry in answer['files']:
            if 'code' in entry:
                out.append(_Outcome(error=CacheservError(entry['code'], entry['message'], entry['path'])))
                continue
            try:
                if entry['blocks'] is not None:
                    out.append(_Outcome(shm.read(answer, entry, granted_at)))
                    continue
            except StaleGrant:
                pass
            remote.append(len(out))
            out.append(None)
        # Ranges the server could not place: over the socket, as asked.
        for i in [i for i in remote if isinstance(paths[i], dict)]:
            remote.remove(i)
            try:
                out[i] = _Outcome(self._read_remote(paths[i]['path'], paths[i]['offset'], paths[i]['length']))
            except CacheservError as e:
                out[i] = _Outcome(error=e)
        if remote:
            # Pipelined; after a failure, the rest one by one, each with its own outcome.
            done = 0
            try:
                for i, (_, data) in zip(remote, self._read_many_remote([answer['files'][i]['path'] for i in remote], 8)):
                    out[i] = _Outcome(data)
                    done += 1
            except CacheservError:
                pass
            for i in remote[done:]:
                try:
                    out[i] = _Outcome(self._read_remote(answer['files'][i]['path']))
                except CacheservError as e:
                    out[i] = _Outcome(error=e)
        return out

    def _located_into(self, path, mv, offset, expect=None):
        """``len(mv)`` bytes of ``path`` from ``offset`` (clipped to its end) read from shared
        memory into ``mv``: the number read, or None when the server could not place them
        there or the grant ran out first (read them over the socket). ``expect``: the
        ``(size, mtimeMs)`` the file must still have, else ECHANGED."""
        path = os.fsdecode(path)
        with self._guard():
            release = [] if self._grant is None else [self._grant]
            self._grant = None
            granted_at = time.monotonic()
            answer = self.request('locate', paths=[{'path': path, 'offset': offset, 'length': len(mv)}], release=release)
            self._grant = answer.get('lease')
            if self._shm is None:
                self._shm = ShmReader(self.verify)
            shm = self._shm
        entry = answer['files'][0]
        if 'code' in entry:
            raise CacheservError(entry['code'], entry['message'], entry['path'])
        if expect is not None and (entry['size'], entry.get('mtimeMs')) != expect:
            raise CacheservError('ECHANGED', 'the file changed on the server since it was opened', path)
        if entry['blocks'] is None:
            return None
        try:
            return shm.read_into(answer, entry, granted_at, mv)
        except StaleGrant:
            return None

    def _read_many_remote(self, paths, in_flight):
        """Over the socket: the paths go out in batches, one ``readv`` request each (PROTOCOL.md),
        two on their way at once; entries are taken as they arrive whole, in order."""
        it = iter(paths)
        again = deque()  # paths whose batch's connection died before their entries came
        pending = deque()  # [items, req, entries taken]
        attempt = 0
        exhausted = False
        try:
            while True:
                if self._falling_back():
                    # The server was unreachable a moment ago: read the files themselves.
                    with self._guard():
                        left = [p for items, _, k in pending for p in items[k:]] + list(again)
                        again.clear()
                        while pending:
                            self._abandon(pending.popleft()[1])
                    for p in left:
                        yield p, self.read(*_span(p))
                    for p in it:
                        yield p, self.read(*_span(p))
                    return
                with self._guard():
                    try:
                        while len(pending) < 2 and (again or not exhausted):
                            items = []
                            asked = []  # the items as readv takes them
                            size = 0
                            while len(items) < max(in_flight, READV_BATCH) and size < _READV_BATCH_BYTES:
                                if not again:
                                    try:
                                        again.append(next(it))
                                    except StopIteration:
                                        exhausted = True
                                        break
                                item = again.popleft()
                                items.append(item)
                                asked.append(_readv_item(item))
                                size += len(json.dumps(asked[-1])) + 1
                            if not items:
                                break
                            pending.append([items, self._readv_request(asked), 0])
                        if not pending:
                            return
                        head = pending[0]
                        items, req, k = head
                        if not self._await_entries(req):
                            req.take()  # raises what ended the request
                            if k < len(items):
                                raise CacheservError('EPROTO', 'readv %d: %d paths asked for, %d entries' % (req.id, len(items), k))
                            pending.popleft()
                            continue
                        index, kind, _size, _mtime, body = req.entries.pop()
                        if index != k:
                            raise CacheservError('EPROTO', 'readv %d: entry %d where %d was due' % (req.id, index, k))
                        head[2] = k + 1
                        path = items[k]
                        attempt = 0
                    except CacheservError as e:
                        if not self._again_after(e, attempt):
                            continue
                        # The connection died under the batches: ask for their rest again.
                        attempt += 1
                        again.extendleft(reversed([p for items, _, k in pending for p in items[k:]]))
                        for _, r, _k in pending:
                            self._abandon(r)
                        pending.clear()
                        continue
                if kind != 0:
                    try:
                        err = json.loads(body.decode('utf-8'))
                        raise CacheservError(str(err.get('code', 'EIO')), str(err.get('message', '')), path if isinstance(path, str) else _span(path)[0])
                    except (ValueError, AttributeError):
                        raise CacheservError('EPROTO', 'readv: an error entry that is not JSON')
                yield path, body
        finally:
            if pending:
                with self._guard():
                    for _, req, _k in pending:
                        self._abandon(req)

    def ls(self, path='', long=False):
        """Entries of a directory under the root: ``[{'name', 'type'}]``, sorted by name;
        ``type`` is ``file``, ``dir`` or ``other``. With ``long=True`` files have a ``size``
        too (the server then looks at each file; without it, only at the directory)."""
        args = {'path': path, 'long': True} if long else {'path': path}
        return self._or_fallback(lambda: self.request('ls', **args)['entries'], lambda: _local_ls(self._local(path), long))

    def tree(self, path='', suffix='', page_size=None):
        """Every file under ``path`` (or the file itself) as ``{'path', 'size'}``, depth first
        in name order, in one streamed response; ``suffix`` keeps names ending with it. A
        connection that dies under it is asked again for the files after the last one given.
        With ``page_size``, a page of that many files per round trip instead."""
        rel = path.strip('/')
        if page_size is not None:
            yield from self._tree_pages(path, rel, suffix, page_size)
            return
        after = None
        attempt = 0
        while True:
            if self._falling_back():
                yield from _local_tree(self._local(path), rel, suffix, after)
                return
            req = None
            try:
                with self._guard():
                    args = {'path': rel, 'stream': True}
                    if suffix:
                        args['suffix'] = suffix
                    if after is not None:
                        args['after'] = after
                    req = self._begin('tree', args, is_read=True)
                    req.entries = _TreeLines()
                while True:
                    with self._guard():
                        if not self._await_entries(req):
                            req.take()  # raises what ended the request, if anything did
                            return
                        batch = req.entries.pop()
                    for f in batch:
                        after = f['path']
                        yield f
                    attempt = 0
            except CacheservError as e:
                if self._again_after(e, attempt):
                    attempt += 1
            finally:
                if req is not None and not req.done:
                    with self._guard():
                        self._abandon(req)

    def _tree_pages(self, path, rel, suffix, page_size):
        if self._falling_back():
            yield from _local_tree(self._local(path), rel, suffix)
            return
        after = None
        while True:
            args = {'path': rel, 'limit': page_size}
            if suffix:
                args['suffix'] = suffix
            if after is not None:
                args['after'] = after
            page = self._or_fallback(lambda: self.request('tree', **args), lambda: None)
            if page is None:  # the server went away: list the fallback root from where it was
                yield from _local_tree(self._local(path), rel, suffix, after)
                return
            for f in page['files']:
                yield f
            after = page['next']
            if after is None:
                return

    def stat(self, path):
        """``{path, type, size, mtimeMs, mtime, cachedBytes, cached}``."""
        return self.request('stat', path=path)

    def stats(self):
        """The server's counters since it started (hits, misses, cacheBytes, nacks, ...)."""
        return self.request('stats')

    def warm(self, path='', progress=None, paths=None, idle=False):
        """Load a file, or every file under a directory, into the server's cache; with
        ``paths`` (any iterable), exactly the files listed, in that order (a request per batch
        of paths; it stops once the cache is full). ``progress``, if given, is called with each
        PROGRESS dict. Returns ``{files, bytes, totalFiles, totalBytes, full, skipped}``; for a
        list, ``skipped`` counts listed paths that were missing, not files or refused, and
        ``skippedPaths`` names the first few with their codes. ``idle``: a prefetch, whose disk
        reads wait while other requests' run (``loader()``'s read-ahead)."""
        extra = {'idle': True} if idle else {}
        if paths is None:
            return self.request('warm', progress=progress, path=path, **extra)
        if path:
            raise ValueError('give path or paths, not both')
        total = {'files': 0, 'bytes': 0, 'totalFiles': 0, 'totalBytes': 0, 'full': False, 'skipped': 0, 'skippedPaths': []}

        def summed(r):
            out = {k: total[k] + r.get(k, 0) for k in ('files', 'bytes', 'totalFiles', 'totalBytes', 'skipped')}
            out['full'] = r.get('full', False)
            out['skippedPaths'] = (total['skippedPaths'] + r.get('skippedPaths', []))[:20]
            return out

        def send(batch):
            r = self.request('warm', progress=progress and (lambda p: progress(summed(p))), paths=batch, **extra)
            total.update(summed(r))

        for batch in self._warm_batches(paths):
            if total['full']:
                break
            send(batch)
        return total

    def _warm_batches(self, paths):
        """``paths`` (any iterable) cut into lists that each fit one ``warm`` request line,
        well within the server's longest (HELLO ``maxRequest``)."""
        limit = min(_WARM_BATCH_BYTES, self.hello.get('maxRequest', 2 * _WARM_BATCH_BYTES) // 2)
        batch, size = [], 0
        for p in paths:
            n = len(json.dumps(p)) + 1
            if batch and size + n > limit:
                yield batch
                batch, size = [], 0
            batch.append(p)
            size += n
        if batch:
            yield batch

    def pin(self, path):
        """Keep a file, or every file under a directory, in the server's cache whatever its
        eviction policy does (loading what is not cached). More than the cache can pin raises
        ENOSPC and pins nothing. Returns ``{files, bytes, pinnedFiles, pinnedBytes}``."""
        return self.request('pin', path=path)

    def unpin(self, path=''):
        """Let the pinned files at or under ``path`` (every pinned file without one) be evicted
        again. Returns ``{files, bytes, pinnedFiles, pinnedBytes}``."""
        return self.request('unpin', path=path)

    def evict(self, path=None):
        """Drop the cached blocks of a file or directory; everything without ``path``.
        Returns ``{files, blocks, bytes}`` (``files`` is None when everything was dropped)."""
        if path is None:
            return self.request('evict')
        return self.request('evict', path=path)

    def request(self, op, progress=None, **args):
        """Send any command answered by one RESULT frame (PROGRESS frames go to ``progress``).
        read, stat, ls and stats are sent again when their connection dies (``retry_delays``)."""
        def call():
            req = self._begin(op, args, is_read=False)
            req.progress = progress
            self._wait(req)
            return req.take()
        if op in _REPEATABLE:
            return self._retrying(call)
        with self._guard():
            return call()

    # --- retries and the fallback ---

    def _retrying(self, call):
        """``call()`` under the lock, made again after each retry delay while it fails because
        its connection died; then its last error."""
        attempt = 0
        while True:
            with self._guard():
                try:
                    return call()
                except CacheservError as e:
                    if not self._may_retry(e, attempt):
                        raise
            self._pause(attempt)
            attempt += 1

    def _await_entries(self, req):
        """Take in frames until a streamed request (readv, tree) has a whole piece ready in
        ``req.entries``; False when it ended instead (its connection went away, say)."""
        while not req.entries.ready and not req.done:
            if self._sock is None:
                self._finish(req, CacheservError('ECLOSED', 'connection closed'))
                break
            self._pump()
        return req.entries.ready

    def _again_after(self, e, attempt):
        """A streamed request failed with ``e``: True to send it again (after the retry delay
        ``attempt``), False to read the fallback root from now on; raises ``e`` otherwise."""
        if self._may_retry(e, attempt):
            self._pause(attempt)
            return True
        if self.fallback_root is None or e.code not in _UNREACHABLE:
            raise e
        self._fall_back(e)
        return False

    def _may_retry(self, e, attempt):
        if self._closed or attempt >= len(self.retry_delays) or e.code not in _RETRIED:
            return False
        if e.code == 'ESHUTDOWN' and not self._reqs:
            # That connection takes no new request: the next attempt opens a new one.
            self._drop(CacheservError('ECLOSED', 'the server is shutting down'))
        return True

    def _pause(self, attempt):
        time.sleep(self.retry_delays[attempt])

    def _falling_back(self):
        return self.fallback_root is not None and time.monotonic() < self._fallback_until

    def _fall_back(self, e):
        self._fallback_until = time.monotonic() + FALLBACK_SECONDS
        if not self._warned:
            self._warned = True
            sys.stderr.write('cacheserv_client: %s is unreachable (%s); reading the files under %s directly\n' % (
                self.address, e, self.fallback_root))
            sys.stderr.flush()

    def _or_fallback(self, remote, local):
        """``remote()``; with ``fallback_root``, ``local()`` when the server cannot be reached."""
        if self._falling_back():
            return local()
        try:
            return remote()
        except CacheservError as e:
            if self.fallback_root is None or e.code not in _UNREACHABLE:
                raise
            self._fall_back(e)
        return local()

    def _local(self, path):
        """``path`` under ``fallback_root``, which it may not leave."""
        rel = os.fsdecode(path).strip('/')
        parts = [p for p in rel.split('/') if p not in ('', '.')]
        if '..' in parts:
            raise CacheservError('EACCES', 'path leaves the root', rel)
        root = os.path.realpath(self.fallback_root)
        full = os.path.realpath(os.path.join(root, *parts))
        if full != root and not full.startswith(root + os.sep):
            raise CacheservError('EACCES', 'path leaves the root', rel)
        return full

    def client_stats(self):
        """Counters of the reverse path: ``{nacks, lostSync, timeouts}``."""
        return {'nacks': self.nacks, 'lostSync': self.lost_sync, 'timeouts': self.timeouts}

    # --- connection ---

    def _guard(self):
        if self._pid is not None and self._pid != os.getpid():
            self._forget_after_fork()
        return self._lock

    def _forget_after_fork(self):
        # This process inherited the parent's connection: it must never read or write on it (the
        # parent owns that conversation, and its requests in flight). Closing our copy of the file
        # descriptor, without shutdown(), leaves the parent's connection exactly as it was; then
        # the next call here opens a connection of our own.
        sock = self._sock
        closed = self._closed
        counters = (self.nacks, self.lost_sync, self.timeouts)
        self._init_state()
        self._closed = closed
        self.nacks, self.lost_sync, self.timeouts = counters
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _connection(self):
        sock = self._sock
        # While authenticating, the connection is the one just opened: no second look (and no loop).
        if sock is not None and (self._reqs or self._authenticating or self._still_open(sock)):
            return sock
        if self._closed:
            raise CacheservError('ECLOSED', 'client closed')
        gone = self._gone
        try:
            return self._open()
        except CacheservError as e:
            if gone is None or e.code != 'ECONNECT':
                raise
            # Nothing answers any more: the server is gone, as the request would have found it.
            raise CacheservError('ECLOSED', '%s, and a new one failed: %s' % (gone, e.message)) from e

    def _closes_after(self):
        """Ms of quiet after which the server closes this connection (0: never): its idle
        timeout, or, before the first request, its first-request deadline if that is sooner."""
        hello = self._hello or {}

        def ms(v):
            return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else float('inf')

        after = min(ms(hello.get('idleTimeout')), float('inf') if self._requested else ms(hello.get('requestTimeout')))
        return 0 if after == float('inf') else after

    def _still_open(self, sock):
        """Whether a new request may go out on ``sock``, with no request in flight on it.

        Takes in, without waiting, what the server sent since the last call (late frames of
        cancelled requests, an error on id 0, its close), and gives the connection up when the
        server may be closing it for idleness right now (HELLO ``idleTimeout``, less a margin
        of a quarter of it, at most 5 s): a request sent then could cross the close and be lost.
        False once the connection is dropped."""
        idle = self._closes_after()
        if idle > 0:
            if time.monotonic() - self._last_io >= (idle - min(idle / 4.0, 5000.0)) / 1000.0:
                self._drop(CacheservError('ECLOSED', 'connection left before the server\'s idle timeout'))
                return False
        # A socket with a timeout waits for data before it reads: this one must not wait at all.
        sock.settimeout(0)
        try:
            while self._sock is sock:
                try:
                    n = sock.recv_into(self._mv[self._end:])
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError as e:
                    self._drop(CacheservError('ECLOSED', 'connection closed (%s)' % (e.strerror or e)))
                    return False
                if n == 0:
                    self._drop(CacheservError('ECLOSED', 'connection closed by the server'))
                    return False
                self._end += n
                self._last_io = time.monotonic()
                self._parse()
            return False
        finally:
            if self._sock is sock:
                sock.settimeout(self.progress_timeout)

    def _open(self):
        addr = self._addr
        deadline = time.monotonic() + self.timeout
        if len(self._buf) < FIRST_BUFFER:
            self._mv.release()
            self._buf = bytearray(FIRST_BUFFER)
            self._mv = memoryview(self._buf)
        self._bulk = False
        try:
            if addr[0] == 'unix':
                if not hasattr(socket, 'AF_UNIX'):
                    raise CacheservError('ECONNECT', 'unix sockets are not supported here')
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self.timeout)
                try:
                    sock.connect(addr[1])
                except BaseException:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((addr[1], addr[2]), timeout=self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except socket.timeout:
            raise CacheservError('ECONNECT', 'no answer from %s within %g s' % (self.address, self.timeout))
        except OSError as e:
            raise CacheservError('ECONNECT', 'cannot connect to %s: %s' % (self.address, e.strerror or e))
        try:
            hello = self._read_hello(sock, deadline)
        except BaseException:
            sock.close()
            self._start = self._end = 0
            raise
        sock.settimeout(self.progress_timeout)
        self._sock = sock
        self._last_io = time.monotonic()
        self._requested = False
        self._pid = os.getpid()
        self._hello = hello
        self._silent = 0
        self._hunting = False
        if hello.get('auth'):
            self._authenticate()
        return sock

    def _authenticate(self):
        # The server wants its token as the first request, or it closes the connection (EAUTH).
        token = self.token if self.token is not None else os.environ.get('CACHESERV_TOKEN')
        try:
            if token is None:
                raise CacheservError('EAUTH', 'this server needs a token: pass token= or set CACHESERV_TOKEN')
            self._authenticating = True
            self.request('auth', token=token)
        except CacheservError as e:
            if e.code == 'EAUTH' and token is not None:
                # The server's own message names its command-line option; say what works here.
                e = CacheservError('EAUTH', 'the server refused the token: pass token= or set CACHESERV_TOKEN')
            self._drop(e)
            raise e
        finally:
            self._authenticating = False

    def _read_hello(self, sock, deadline):
        self._start = self._end = 0
        mv = self._mv
        need = HEADER_SIZE
        header = None
        while True:
            if self._end >= need:
                if header is None:
                    header = _check_header(self._buf, mv, 0)
                    if header is None:
                        raise CacheservError('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?')
                    need = HEADER_SIZE + _DIGEST_SIZE[header[6]] + header[5]
                    if need > len(self._buf):
                        raise CacheservError('EPROTO', 'HELLO frame too large')
                    continue
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise CacheservError('ECONNECT', 'no HELLO from %s within %g s' % (self.address, self.timeout))
            sock.settimeout(left)
            try:
                n = sock.recv_into(mv[self._end:])
            except socket.timeout:
                continue
            except OSError as e:
                raise CacheservError('ECLOSED', 'connection closed before HELLO (%s)' % (e.strerror or e))
            if n == 0:
                raise CacheservError('ECLOSED', 'connection closed by the server before HELLO')
            self._end += n
        _, _, ftype, rid, _, length, ck, _, _, _ = header
        dsize = _DIGEST_SIZE[ck]
        payload = mv[HEADER_SIZE + dsize:need]
        if ftype == ERROR and rid == 0 and _verify(ck, self._buf, HEADER_SIZE, payload):
            # Turned away instead of greeted (EBUSY: the server is at its connection limit).
            try:
                err = json.loads(bytes(payload))
                raise CacheservError(str(err['code']), str(err.get('message', err['code'])))
            except (ValueError, KeyError, TypeError):
                raise CacheservError('EPROTO', 'server refused the connection with an unreadable error')
        if ftype != HELLO or rid != 0 or not _verify(ck, self._buf, HEADER_SIZE, payload):
            raise CacheservError('EPROTO', 'server did not open with a HELLO frame; is this a cacheserv-pipe server?')
        try:
            hello = json.loads(bytes(payload))
        except ValueError:
            raise CacheservError('EPROTO', 'HELLO carries invalid JSON')
        if not isinstance(hello, dict) or hello.get('protocol') != PROTOCOL_VERSION:
            raise CacheservError('EPROTO', 'server speaks protocol %r, this client speaks %d' % (
                hello.get('protocol') if isinstance(hello, dict) else None, PROTOCOL_VERSION))
        self._start = need
        return hello

    def _drop(self, err):
        """Lose the connection: fail every request in flight with ``err``."""
        sock = self._sock
        self._sock = None
        self._start = self._end = 0
        self._hunting = False
        if sock is not None:
            self._gone = err.message
            try:
                sock.close()
            except OSError:
                pass
        reqs = list(self._reqs.values())
        self._reqs.clear()
        for r in reqs:
            if not r.done:
                r.done = True
                r.error = CacheservError(err.code, err.message, r.path)
            self._give_back(r)
            r.dest = r.chunks = None

    def _send(self, line):
        try:
            self._sock.sendall(line)
            self._last_io = time.monotonic()
            self._requested = True
        except OSError as e:
            self._drop(CacheservError('ECLOSED', 'connection lost while sending (%s)' % (e.strerror or e)))
            return False
        except BaseException:
            # Interrupted (KeyboardInterrupt) with perhaps half a line sent: the connection is unusable.
            self._drop(CacheservError('ECLOSED', 'interrupted'))
            raise
        return True

    def _line(self, rid, op, args):
        body = dict(args)
        body['id'] = rid
        body['op'] = op
        return json.dumps(body, separators=(',', ':')).encode('utf-8') + b'\n'

    # --- requests ---

    def _begin(self, op, args, is_read):
        path = args.get('path')
        if path is not None and not isinstance(path, str):
            path = args['path'] = os.fsdecode(path)  # bytes, pathlib.PurePosixPath
        self._connection()
        rid = self._next_id
        while rid in self._reqs:
            rid = rid + 1 if rid < 0xFFFFFFFF else 1
        self._next_id = rid + 1 if rid < 0xFFFFFFFF else 1
        req = _Request(rid, op, is_read, path)
        self._reqs[rid] = req
        self._send(self._line(rid, op, args))
        return req

    def _read_request(self, path, offset, length, dest=None, expect=None):
        args = {'path': path, 'offset': offset}
        if length is not None:
            args['length'] = length
        req = self._begin('read', args, is_read=True)
        req.dest = dest
        req.expect = expect
        return req

    def _readv_request(self, paths):
        """A readv of ``paths``, each a path string or a ``{path, offset, length}`` dict (_readv_item)."""
        req = self._begin('readv', {'paths': paths}, is_read=True)
        req.entries = _Entries()
        return req

    def _finish(self, req, error=None, cancel=False):
        req.done = True
        self._give_back(req)
        if error is not None and req.error is None and req.exc is None:
            error.path = req.path
            req.error = error
        if self._reqs.get(req.id) is req:
            del self._reqs[req.id]
            if cancel and self._sock is not None:
                self._send(self._line(req.id, 'cancel', {}))

    def _lend(self, length):
        """A scratch buffer of at least ``length`` bytes, or None."""
        free = self._scratch_free
        best = None
        for i, b in enumerate(free):
            if len(b) >= length and (best is None or len(b) < len(free[best])):
                best = i
        if best is not None:
            return free.pop(best)
        size = 65536
        while size < length:
            size *= 2
        while free and self._scratch_total + size > SCRATCH_MAX:
            self._scratch_total -= len(free.pop(0))  # too small for this one: let it go
        if self._scratch_total + size > SCRATCH_MAX:
            return None
        self._scratch_total += size
        return bytearray(size)

    def _give_back(self, req):
        scratch = req.scratch
        if scratch is not None:
            req.scratch = None
            req.dest = None
            self._scratch_free.append(scratch)

    def _abandon(self, req):
        """The caller no longer wants this request: forget it and stop it on the server."""
        if not req.done:
            self._finish(req, CacheservError('ECANCELED', 'abandoned by the caller'), cancel=True)

    def _nack(self, req):
        n = req.lost()
        if req.stalls > MAX_STALLS:
            self._finish(req, CacheservError(
                'ECORRUPT', 'gave up after %d requests to resend brought no intact frame (stuck at byte %d)' % (MAX_STALLS, n['offset'])), cancel=True)
            return
        self.nacks += 1
        self._send(self._line(req.id, 'nack', n))

    def _wait(self, req):
        while not req.done:
            if self._sock is None:
                # The connection went away under a request that was still registered.
                self._finish(req, CacheservError('ECLOSED', 'connection closed'))
                break
            self._pump()

    # --- receiving ---

    def _pump(self):
        """One recv, then every whole frame it completes."""
        sock = self._sock
        room = len(self._buf) - self._end
        try:
            n = sock.recv_into(self._mv[self._end:])
        except socket.timeout:
            self._on_timeout()
            return
        except InterruptedError:
            return
        except OSError as e:
            self._drop(CacheservError('ECLOSED', 'connection closed (%s)' % (e.strerror or e)))
            return
        except BaseException:
            # KeyboardInterrupt and the like, mid-read: nothing on this connection can be trusted.
            self._drop(CacheservError('ECLOSED', 'interrupted'))
            raise
        if n == 0:
            self._drop(CacheservError('ECLOSED', 'connection closed by the server'))
            return
        self._end += n
        self._silent = 0
        self._last_io = time.monotonic()
        if n == room:
            self._bulk = True  # more was waiting than there was room for: widen (_make_room)
        try:
            self._parse()
        except BaseException:
            self._drop(CacheservError('ECLOSED', 'interrupted'))
            raise

    def _on_timeout(self):
        """Nothing arrived for progress_timeout while requests waited (rule 6)."""
        if not self._reqs:
            return
        self.timeouts += 1
        self._silent += 1
        if self._silent > SILENT_TIMEOUTS:
            self._drop(CacheservError('ETIMEDOUT', 'no byte from the server in %g s, despite asking again %d times' % (
                (SILENT_TIMEOUTS + 1) * self.progress_timeout, SILENT_TIMEOUTS)))
            return
        # Whatever half-frame is buffered will never be completed: hunt past it.
        if self._end > self._start:
            if not self._hunting and self._end - self._start >= HEADER_SIZE:
                self._start += 1  # the valid header of the half-received frame
            self._hunting = True
        for req in list(self._reqs.values()):
            if self._sock is None:
                break
            if not req.done:
                self._nack(req)

    def _parse(self):
        buf = self._buf
        mv = self._mv
        start = self._start
        end = self._end
        need = HEADER_SIZE
        unpack = _HEADER.unpack_from
        while True:
            if self._hunting:
                found = self._hunt(start, end)
                if found < 0:
                    # Keep a last byte that may be the first half of a magic, or a partial header.
                    start = -found - 1
                    need = HEADER_SIZE
                    break
                start = found
                self._hunting = False
            if end - start < HEADER_SIZE:
                need = HEADER_SIZE
                break
            magic, ver, ftype, rid, seq, length, ck, epoch, _, hcrc = unpack(buf, start)
            if magic != MAGIC or _crc32(mv[start:start + 20]) != hcrc or ver != PROTOCOL_VERSION or length > MAX_PAYLOAD or ck > 2:
                # The frame boundary is lost (rule 5): whose frame it was is unknown; each victim
                # finds out from a gap in its sequence numbers, or from the progress timeout.
                self.lost_sync += 1
                self._hunting = True
                start += 1
                continue
            body = start + HEADER_SIZE + _DIGEST_SIZE[ck]
            stop = body + length
            if stop > end:
                need = stop - start
                break
            payload = mv[body:stop]
            intact = _verify(ck, buf, start + HEADER_SIZE, payload)
            start = stop
            self._start = start
            self._dispatch(ftype, rid, seq, epoch, intact, payload)
            if self._sock is None:
                return  # the connection was dropped while dispatching
        self._start = start
        self._make_room(need)

    def _hunt(self, start, end):
        """Position of the next valid header in buf[start:end], or -(where to keep from) - 1."""
        buf = self._buf
        mv = self._mv
        while True:
            at = buf.find(_MAGIC_BYTES, start, end)
            if at < 0:
                keep = 1 if end > start and buf[end - 1] == 0xC5 else 0
                return -(end - keep) - 1
            if end - at < HEADER_SIZE:
                return -at - 1
            if _check_header(buf, mv, at) is not None:
                return at
            start = at + 1

    def _make_room(self, need):
        """Make sure ``need`` bytes from the current frame's start fit in the buffer."""
        start, end = self._start, self._end
        cap = len(self._buf)
        if self._bulk and cap < RECEIVE_BUFFER:
            need = max(need, RECEIVE_BUFFER)
            self._bulk = False
        if start == end and need <= cap:
            self._start = self._end = 0
            return
        if need > cap:
            nb = bytearray(max(need, 2 * cap))
            nb[0:end - start] = self._mv[start:end]
            self._mv.release()
            self._buf = nb
            self._mv = memoryview(nb)
        elif start > 0 and (start + need > cap or (cap - end < 65536 and end - start <= cap // 4)):
            # Move the partial frame to the front (memoryview assignment is a memmove).
            self._mv[0:end - start] = self._mv[start:end]
        else:
            return
        self._start = 0
        self._end = end - start

    def _dispatch(self, ftype, rid, seq, epoch, intact, payload):
        if rid == 0:
            if not intact:
                return  # unreadable; if it was fatal the server closes and we see ECLOSED
            if ftype == ERROR:
                err = _error_from(payload)
            else:
                err = CacheservError('EPROTO', 'unexpected connection frame type %d' % ftype)
            if err.code == 'EBADREQ':
                return  # a line of ours the server refused without ending anything: the connection goes on
            self._drop(err)
            return
        req = self._reqs.get(rid)
        if req is None or req.done:
            return  # a request we finished or cancelled: its late frames are dropped
        verdict = req.accept(ftype, seq, epoch, intact, payload)
        if verdict != _DELIVER:
            if verdict == _LOST:
                self._nack(req)
            elif verdict == _UNREADABLE:
                self._finish(req, CacheservError('ECORRUPT', 'the server ended request %d with an error that arrived damaged' % rid))
            return
        if ftype == ERROR:
            # An ERROR sent before our NACK arrived: the server will still answer the NACK with a
            # resend, which cancelling stops.
            self._finish(req, _error_from(payload), cancel=req.awaiting)
            return
        try:
            if req.is_read:
                self._on_read_frame(req, ftype, payload)
            else:
                self._on_result_frame(req, ftype, payload)
        except CacheservError as e:
            self._finish(req, e, cancel=True)

    def _on_read_frame(self, req, ftype, payload):
        if req.entries is not None:
            return self._on_readv_frame(req, ftype, payload)
        if ftype == DATA:
            info = req.info
            if info is None:
                raise CacheservError('EPROTO', 'read %d: DATA before START' % req.id)
            pos = req.offset
            n = len(payload)
            if pos + n > info['length']:
                raise CacheservError('EPROTO', 'read %d: more bytes than announced' % req.id)
            chunks = req.chunks
            if chunks is not None:
                chunks.append(bytes(payload))
            else:
                req.dest[pos:pos + n] = payload
            req.offset = pos + n
        elif ftype == START:
            if req.info is not None:
                raise CacheservError('EPROTO', 'read %d: second START frame' % req.id)
            info = _json(payload, 'START')
            try:
                length = int(info['length'])
                info['size']
            except (KeyError, TypeError, ValueError):
                raise CacheservError('EPROTO', 'read %d: START without size and length' % req.id)
            if req.expect is not None and (info['size'], info.get('mtimeMs')) != req.expect:
                raise CacheservError('ECHANGED', 'the file changed on the server since it was opened')
            if req.dest is None:
                page = self._hello.get('pageSize', 0) if self._hello else 0
                scratch = self._lend(length) if length > page else None
                if scratch is not None:
                    req.scratch = scratch
                    req.dest = memoryview(scratch)[:length]
                else:
                    req.chunks = []
            elif length > len(req.dest):
                raise CacheservError('EPROTO', 'read %d: server announced more bytes than asked for' % req.id)
            req.info = info
        elif ftype == END:
            end = _json(payload, 'END')
            got = req.offset
            if req.info is None or got != req.info['length'] or not isinstance(end, dict) or end.get('length') != got:
                raise CacheservError('EPROTO', 'read %d: got %d bytes, expected %s' % (
                    req.id, got, req.info['length'] if req.info else '?'))
            chunks = req.chunks
            if chunks is not None:
                req.result = chunks[0] if len(chunks) == 1 else b''.join(chunks)
                req.chunks = None
            elif req.scratch is not None:
                req.result = bytes(req.dest)
            else:
                req.result = got
                req.dest = None
            self._finish(req)
        else:
            raise CacheservError('EPROTO', 'read %d: unexpected frame type %d' % (req.id, ftype))

    def _on_readv_frame(self, req, ftype, payload):
        """A frame of a request whose DATA is one stream cut by ``req.entries`` (readv, a streamed tree)."""
        if ftype == DATA:
            if req.info is None:
                raise CacheservError('EPROTO', '%s %d: DATA before START' % (req.op, req.id))
            req.entries.feed(payload)
            req.offset += len(payload)
        elif ftype == START:
            if req.info is not None:
                raise CacheservError('EPROTO', '%s %d: second START frame' % (req.op, req.id))
            req.info = _json(payload, 'START')
        elif ftype == END:
            end = _json(payload, 'END')
            if req.info is None or not isinstance(end, dict) or end.get('length') != req.offset or not req.entries.at_boundary():
                raise CacheservError('EPROTO', '%s %d: the stream ended short of its length or inside an entry' % (req.op, req.id))
            self._finish(req)
        elif ftype != PROGRESS:  # PROGRESS: "still working" (a tree walking a slow disk)
            raise CacheservError('EPROTO', '%s %d: unexpected frame type %d' % (req.op, req.id, ftype))

    def _on_result_frame(self, req, ftype, payload):
        if ftype == RESULT:
            req.result = _json(payload, 'RESULT')
            self._finish(req)
        elif ftype == PROGRESS:
            cb = req.progress
            if cb is not None:
                try:
                    body = json.loads(bytes(payload))
                except ValueError:
                    return  # progress is advisory: a malformed one is skipped, as the Node client does
                try:
                    cb(body)
                except Exception as e:  # the caller's exception ends the call; stop the server too
                    req.exc = e
                    self._finish(req, cancel=True)
        else:
            raise CacheservError('EPROTO', 'unexpected frame type %d in reply to request %d' % (ftype, req.id))


class _Outcome(object):
    """The bytes of one path, or the error it failed with (raised when asked for)."""
    __slots__ = ('data', 'error')

    def __init__(self, data=None, error=None):
        self.data = data
        self.error = error

    def get(self):
        if self.error is not None:
            raise self.error
        return self.data


def _span(item):
    """``(path, offset, length)`` of a read_many item: a path, or such a range already."""
    return (item, 0, None) if isinstance(item, (str, bytes, os.PathLike)) else tuple(item)


def _readv_item(item):
    """A read_many item as a readv ``paths`` item: the path, or ``{path, offset, length}``."""
    path, offset, length = _span(item)
    path = os.fsdecode(path)
    if not offset and length is None:
        return path
    out = {'path': path, 'offset': offset}
    if length is not None:
        out['length'] = length
    return out


class _TreeLines(object):
    """The files of a streamed tree (PROTOCOL.md, "tree"): a JSON object per line, parsed a
    batch at a time (one ``json.loads`` per arrival); each batch a list of dicts."""

    def __init__(self):
        self._done = deque()
        self._rest = b''

    @property
    def ready(self):
        return bool(self._done)

    def pop(self):
        return self._done.popleft()

    def at_boundary(self):
        return not self._rest

    def feed(self, payload):
        data = self._rest + bytes(payload) if self._rest else bytes(payload)
        last = data.rfind(b'\n')
        if last < 0:
            self._rest = data
            return
        self._rest = data[last + 1:]
        # Thousands of dicts at once: each few hundred would start a pass of the cyclic garbage
        # collector over every object the process holds (torch's included: tens of ms), for
        # objects that are not garbage. It runs once after, if it is due.
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            files = json.loads(b'[' + data[:last].replace(b'\n', b',') + b']')
        except ValueError:
            raise CacheservError('EPROTO', 'tree: a line of the stream is not JSON')
        finally:
            if collecting:
                gc.enable()
        if files:
            self._done.append(files)


class _Entries(object):
    """The entries of a readv stream (PROTOCOL.md, "readv"), cut as its pieces arrive:
    each one whole, ``(index, kind, size, mtimeMs, body)``, in order."""

    def __init__(self):
        self._done = deque()
        self._head = bytearray()  # a header being filled
        self._entry = None  # the header of the entry whose body is being filled
        self._parts = []
        self._left = 0

    @property
    def ready(self):
        return bool(self._done)

    def pop(self):
        return self._done.popleft()

    def at_boundary(self):
        return self._entry is None and not self._head

    def feed(self, payload):
        mv = memoryview(payload)
        at = 0
        n = len(mv)
        while at < n:
            if self._entry is None:
                take = min(_ENTRY.size - len(self._head), n - at)
                self._head += mv[at:at + take]
                at += take
                if len(self._head) < _ENTRY.size:
                    return
                index, kind, size, mtime, length = _ENTRY.unpack(bytes(self._head))
                self._head = bytearray()
                if kind not in (0, 1) or length < 0 or length != int(length):
                    raise CacheservError('EPROTO', 'readv: a malformed entry header')
                self._entry = (index, kind, size, mtime)
                self._left = int(length)
                self._parts = []
            take = min(self._left, n - at)
            if take:
                self._parts.append(bytes(mv[at:at + take]))
                at += take
                self._left -= take
            if self._left == 0:
                parts = self._parts
                body = parts[0] if len(parts) == 1 else b''.join(parts)
                self._done.append(self._entry + (body,))
                self._entry = None
                self._parts = []


def _check_header(buf, mv, at):
    """The header fields at ``at`` if they pass every check (magic, header CRC, version,
    length, checksum id), else None."""
    h = _HEADER.unpack_from(buf, at)
    if h[0] != MAGIC or _crc32(mv[at:at + 20]) != h[9] or h[1] != PROTOCOL_VERSION or h[5] > MAX_PAYLOAD or h[6] > 2:
        return None
    return h


def _verify(ck, buf, at, payload):
    """True when the digest at buf[at:] matches ``payload`` under checksum id ``ck``."""
    if ck == 1:
        return _crc32(payload) == _U32.unpack_from(buf, at)[0]
    if ck == 2:
        return _md5(payload).digest() == buf[at:at + 16]
    return ck == 0


# --- the fallback: the files themselves ------------------------------------


def _local_error(e, path):
    code = {2: 'ENOENT', 13: 'EACCES', 21: 'EISDIR', 20: 'ENOTDIR'}.get(e.errno, 'EIO')
    return CacheservError(code, e.strerror or str(e), path)


def _local_read(full, offset=0, length=None):
    """Bytes of a local file, or of a range of it clipped to its end (as the server reads)."""
    try:
        with open(full, 'rb') as f:
            size = os.fstat(f.fileno()).st_size
            if offset > size:
                raise CacheservError('ERANGE', 'offset %d is beyond the end of the file (%d bytes)' % (offset, size), full)
            f.seek(offset)
            return f.read(size - offset if length is None else min(length, size - offset))
    except OSError as e:
        raise _local_error(e, full)


def _local_ls(full, long=False):
    """Entries of a local directory, as ``ls`` answers them (upload temporaries hidden)."""
    try:
        entries = []
        for d in os.scandir(full):
            if d.name.endswith('.cacheserv-tmp'):
                continue
            st = d.stat()
            if _stat.S_ISREG(st.st_mode):
                entries.append({'name': d.name, 'type': 'file', 'size': st.st_size} if long else {'name': d.name, 'type': 'file'})
            else:
                entries.append({'name': d.name, 'type': 'dir' if _stat.S_ISDIR(st.st_mode) else 'other'})
        return sorted(entries, key=lambda e: e['name'])
    except OSError as e:
        raise _local_error(e, full)


def _local_tree(full, rel, suffix='', after=None):
    """Files under a local path, as ``tree`` lists them: depth first, names sorted, each
    directory once; only those after the cursor ``after``."""
    cursor = None if after is None else after.split('/')
    seen = set()

    def visit(path, rel):
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        try:
            names = sorted(os.listdir(path))
        except OSError as e:
            raise _local_error(e, path)
        for name in names:
            if name.endswith('.cacheserv-tmp'):
                continue
            child = os.path.join(path, name)
            child_rel = rel + '/' + name if rel else name
            if os.path.isdir(child):
                segs = child_rel.split('/')
                if cursor is not None and segs < cursor and segs != cursor[:len(segs)]:
                    continue
                yield from visit(child, child_rel)
            elif os.path.isfile(child):
                if cursor is not None and child_rel.split('/') <= cursor:
                    continue
                if child_rel.endswith(suffix):
                    yield {'path': child_rel, 'size': os.path.getsize(child)}

    if os.path.isfile(full):
        if rel.endswith(suffix):
            yield {'path': rel, 'size': os.path.getsize(full)}
        return
    yield from visit(full, rel)


# --- files ------------------------------------------------------------------


class RemoteFile(io.RawIOBase):
    """A read-only, seekable view of one file on the server. Ranges are fetched on
    demand, small reads through a read-ahead buffer of ``readahead`` bytes, large
    ones straight into the caller's buffer. Every range must come from the version
    of the file seen at open (same size and mtime), or the read fails with ECHANGED.

    Works with ``tarfile.open(fileobj=f)``, ``numpy.load(f)``, ``PIL.Image.open(f)``,
    ``zipfile.ZipFile(f)`` and anything else that wants a binary file. Closing it does
    not close the Client."""

    def __init__(self, client, path, readahead=256 * 1024):
        super().__init__()
        self._client = client
        self.name = path if isinstance(path, str) else os.fsdecode(path)
        self.mode = 'rb'
        self._readahead = max(0, int(readahead))
        def call():
            req = client._read_request(self.name, 0, 0)
            client._wait(req)
            req.take()
            return dict(req.info)
        self.info = client._retrying(call)
        self._size = int(self.info['size'])
        self._expect = (self.info['size'], self.info.get('mtimeMs'))
        self._pos = 0
        self._buf = b''
        self._buf_at = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False

    def size(self):
        """The file's size in bytes."""
        return self._size

    def tell(self):
        self._check()
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        self._check()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError('invalid whence (%r, should be 0, 1 or 2)' % (whence,))
        if pos < 0:
            raise ValueError('negative seek position %d' % pos)
        self._pos = pos
        return pos

    def _check(self):
        if self.closed:
            raise ValueError('I/O operation on closed file.')

    def _fetch(self, offset, length):
        """bytes of [offset, offset + length) from the server."""
        c = self._client
        if length >= SHARED_RANGE and c._short_circuit_on():
            buf = bytearray(min(length, self._size - offset))
            got = c._located_into(self.name, memoryview(buf), offset, self._expect)
            if got is not None:
                return bytes(buf) if got == len(buf) else bytes(buf[:got])

        def call():
            req = c._read_request(self.name, offset, length, expect=self._expect)
            c._wait(req)
            return req.take()
        return c._retrying(call)

    def _fetch_into(self, mv, offset):
        c = self._client
        if len(mv) >= SHARED_RANGE and c._short_circuit_on():
            got = c._located_into(self.name, mv, offset, self._expect)
            if got is not None:
                return got

        def call():
            req = c._read_request(self.name, offset, len(mv), dest=mv, expect=self._expect)
            c._wait(req)
            return req.take()
        return c._retrying(call)

    def _buffered(self, pos):
        """How many bytes from ``pos`` on are in the read-ahead buffer, and where."""
        i = pos - self._buf_at
        if 0 <= i < len(self._buf):
            return i, len(self._buf) - i
        return 0, 0

    def readinto(self, b):
        self._check()
        mv = memoryview(b).cast('B')
        pos = self._pos
        want = min(len(mv), self._size - pos)
        if want <= 0:
            return 0
        done = 0
        i, have = self._buffered(pos)
        if have:
            n = min(have, want)
            mv[:n] = self._buf[i:i + n]
            done = n
        left = want - done
        if left > 0:
            if left >= self._readahead:
                got = self._fetch_into(mv[done:done + left], pos + done)
                done += got
            else:
                self._fill(pos + done)
                n = min(len(self._buf), left)
                mv[done:done + n] = self._buf[:n]
                done += n
        self._pos = pos + done
        return done

    def _fill(self, pos):
        self._buf = self._fetch(pos, self._readahead)
        self._buf_at = pos

    def read(self, size=-1):
        self._check()
        if size is None or size < 0:
            return self.readall()
        pos = self._pos
        want = min(size, self._size - pos)
        if want <= 0:
            return b''
        i, have = self._buffered(pos)
        if have >= want:
            self._pos = pos + want
            return self._buf[i:i + want]
        head = self._buf[i:i + have] if have else b''
        left = want - have
        if left >= self._readahead:
            tail = self._fetch(pos + have, left)
        else:
            self._fill(pos + have)
            tail = self._buf[:left]
        self._pos = pos + have + len(tail)
        return head + tail if head else tail

    def readall(self):
        self._check()
        if self._pos >= self._size:
            return b''
        return self.read(self._size - self._pos)

    def peek(self, size=1):
        """Bytes from the current position without moving it (at least 1 unless at EOF)."""
        self._check()
        i, have = self._buffered(self._pos)
        if not have and self._pos < self._size:
            self._fill(self._pos)
            i, have = 0, len(self._buf)
        return self._buf[i:]

    def close(self):
        self._buf = b''
        super().close()

    def __repr__(self):
        return '<cacheserv RemoteFile %r size=%d>' % (self.name, self._size)


# --- tar streams ------------------------------------------------------------

#: The last member of an archive that ``cacheserv-pipe-client tar`` completed.
TAR_MANIFEST = '.cacheserv-manifest.json'


def iter_tar(fileobj, check=True):
    """Yield ``(name, data)`` for every file of a tar stream, in order, reading
    ``fileobj`` sequentially (``sys.stdin.buffer`` under
    ``cacheserv-pipe-client tar DIR | python ...``, or any file object).

    With ``check`` (the default) the stream must end with the manifest that
    ``cacheserv-pipe-client tar`` writes after the last file of a complete
    archive (``.cacheserv-manifest.json``: the number of files, their bytes and
    a sha256 digest over every file's name, size and sha256, in order); the
    manifest itself is not yielded. When the stream is cut short (the client
    or the server died, a member was lost) or does not match its manifest,
    ``CacheservError('ECORRUPT')`` is raised once the end is reached: the files
    yielded so far must then be taken as not delivered. Only when the loop has
    ended without an error was the whole archive received. ``check=False``
    reads a plain archive (``tar --no-manifest``), yielding every file.
    """
    import tarfile

    digest = hashlib.sha256()
    files = 0
    size = 0
    manifest = None
    try:
        with tarfile.open(fileobj=fileobj, mode='r|') as tar:
            for member in tar:
                if manifest is not None:
                    raise CacheservError('ECORRUPT', 'the tar stream goes on after its manifest (%s)' % member.name)
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if check and member.name == TAR_MANIFEST:
                    manifest = data
                    continue
                files += 1
                size += len(data)
                if check:
                    digest.update(b'%s\0%d\0%s\n' % (
                        member.name.encode('utf-8', 'surrogateescape'), len(data),
                        hashlib.sha256(data).hexdigest().encode('ascii')))
                yield member.name, data
    except tarfile.TarError as e:
        raise CacheservError('ECORRUPT', 'the tar stream is broken or cut short: %s' % e) from e
    if not check:
        return
    if manifest is None:
        raise CacheservError('ECORRUPT', 'the tar stream ended without its manifest (%s): it is incomplete, '
                             'or was not written by cacheserv-pipe-client tar' % TAR_MANIFEST)
    try:
        m = json.loads(manifest.decode('utf-8'))
        want = (m['version'], m['files'], m['bytes'], m['sha256'])
    except (ValueError, KeyError, TypeError) as e:
        raise CacheservError('ECORRUPT', 'the tar manifest is unreadable: %s' % e) from e
    got = (1, files, size, digest.hexdigest())
    if want != got:
        raise CacheservError('ECORRUPT', 'the tar stream does not match its manifest: %d files, %d bytes, '
                             'sha256 %s received; the manifest says %r' % (files, size, got[3], m))
