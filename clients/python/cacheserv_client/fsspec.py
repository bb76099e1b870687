"""An fsspec filesystem over a cacheserv-pipe server: ``cacheserv://``.

URLs::

    cacheserv://HOST:PORT/path/under/root    a TCP server
    cacheserv:///path/under/root             the server in $CACHESERV_SERVER
                                             (or the ``server=`` storage option,
                                             e.g. ``server='unix:/run/cs.sock'``)

pip registers it through fsspec's ``fsspec.specs`` entry point; importing this
module registers it too (for a source tree that is not installed). Read-only:
``ls``, ``info``, ``open`` (random access by ranged reads), ``cat_file`` and
``cat_ranges`` (pipelined on one connection with ``Client.read_many``).
"""

import os

from fsspec import register_implementation
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import DEFAULT_ADDRESS, CacheservError, Client

__all__ = ['CacheservFileSystem', 'CacheservFile']

_PROTOCOL = 'cacheserv'

# The errors fsspec callers (pandas, pyarrow) expect, by server code.
_OS_ERRORS = {'ENOENT': FileNotFoundError, 'EISDIR': IsADirectoryError, 'ENOTDIR': NotADirectoryError, 'EACCES': PermissionError}


def _os_error(e, path):
    cls = _OS_ERRORS.get(e.code)
    return cls(path) if cls is not None else e


class CacheservFileSystem(AbstractFileSystem):
    """``server``: the server's address (``tcp://host:port``, ``host:port``,
    ``unix:/path``); default the URL's host and port, else ``$CACHESERV_SERVER``,
    else ``tcp://127.0.0.1:7070``. ``token``: the server's token, if it wants one.
    ``in_flight``: reads pipelined by ``cat_ranges``.

    The connection opens on first use, once per process (the Client notices a
    fork), and the filesystem pickles as its settings, so it can be handed to
    spawned DataLoader workers."""

    protocol = (_PROTOCOL,)
    root_marker = ''

    def __init__(self, server=None, token=None, in_flight=16, **kwargs):
        super().__init__(server=server, token=token, in_flight=in_flight, **kwargs)
        self.server = server or os.environ.get('CACHESERV_SERVER') or DEFAULT_ADDRESS
        self.token = token
        self.in_flight = int(in_flight)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = Client(self.server, token=self.token)
        return self._client

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith(_PROTOCOL + '://'):
            rest = path[len(_PROTOCOL) + 3:]
            # cacheserv://HOST:PORT/path: the host is not part of the path.
            path = rest if rest.startswith('/') else rest.partition('/')[2]
        return path.strip('/')

    @staticmethod
    def _get_kwargs_from_urls(path):
        if path.startswith(_PROTOCOL + '://'):
            host = path[len(_PROTOCOL) + 3:].partition('/')[0]
            if host:
                return {'server': 'tcp://' + host}
        return {}

    def unstrip_protocol(self, name):
        return '%s:///%s' % (_PROTOCOL, name.strip('/'))

    def _entry(self, path, e):
        kind = {'file': 'file', 'dir': 'directory'}.get(e.get('type'), 'other')
        return {'name': path, 'size': e.get('size', 0) if kind == 'file' else 0, 'type': kind}

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        try:
            entries = self.client.ls(path, long=detail)
        except CacheservError as e:
            if e.code == 'ENOTDIR':
                info = self.info(path)
                return [info] if detail else [info['name']]
            raise _os_error(e, path) from e
        prefix = path + '/' if path else ''
        out = [self._entry(prefix + e['name'], e) for e in entries]
        return out if detail else [o['name'] for o in out]

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        if not path:
            return {'name': '', 'size': 0, 'type': 'directory'}
        try:
            st = self.client.stat(path)
        except CacheservError as e:
            raise _os_error(e, path) from e
        info = self._entry(path, st)
        info['mtime'] = st.get('mtimeMs', 0) / 1000.0
        return info

    def _open(self, path, mode='rb', block_size=None, autocommit=True, cache_options=None, **kwargs):
        if mode != 'rb':
            raise NotImplementedError('cacheserv:// is read-only (mode %r)' % mode)
        return CacheservFile(self, path, mode, block_size or 'default', autocommit, cache_options=cache_options, **kwargs)

    def _range(self, path, start, end):
        """``(path, offset, length)`` for fsspec's start/end (None, negative: from the end)."""
        if (start is not None and start < 0) or (end is not None and end < 0):
            size = self.info(path)['size']
            start = None if start is None else (size + start if start < 0 else start)
            end = None if end is None else (size + end if end < 0 else end)
        start = max(start or 0, 0)
        return (path, start, None if end is None else max(end - start, 0))

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        try:
            return self.client.read(*self._range(path, start, end))
        except CacheservError as e:
            if e.code == 'ERANGE':
                return b''  # past the end, as a slice would be
            raise _os_error(e, path) from e

    def cat_ranges(self, paths, starts, ends, max_gap=None, on_error='return', **kwargs):
        if not (len(paths) == len(starts) == len(ends)):
            raise ValueError('paths, starts and ends must have the same length')
        spans = [self._range(self._strip_protocol(p), s, e) for p, s, e in zip(paths, starts, ends)]
        out = []
        # One pipelined window of reads; after a failed one, the rest start a new window.
        while len(out) < len(spans):
            try:
                for _, data in self.client.read_many(spans[len(out):], in_flight=self.in_flight):
                    out.append(data)
            except CacheservError as e:
                if e.code == 'ERANGE':
                    out.append(b'')  # past the end, as a slice would be
                    continue
                err = _os_error(e, spans[len(out)][0])
                if on_error != 'return':
                    raise err from e
                out.append(err)
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_client'] = None
        return state


class CacheservFile(AbstractBufferedFile):
    """A read-only file of a CacheservFileSystem: fsspec's read-ahead cache over ranged reads."""

    def _fetch_range(self, start, end):
        return self.fs.client.read(self.path, start, end - start)


register_implementation(_PROTOCOL, CacheservFileSystem, clobber=True)
