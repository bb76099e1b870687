"""PyTorch datasets over a cacheserv-pipe server.

``CacheservDataset``: map-style, one item per file (a directory or a list).
``TarShardDataset``: iterable, WebDataset-style, over tar shards, the shards
split across DataLoader workers and each read as a stream, member by member.

Both hold the server's address and token, never a socket: each process opens
its own connection on first use (a forked worker notices the pid change, a
spawned one unpickles the settings), and a connection the server closed while
idle between epochs is opened again by the next read.
"""

import io
import itertools
import logging
import socket
import threading

from torch.utils.data import Dataset, IterableDataset, get_worker_info

from . import Client, iter_tar

__all__ = ['CacheservDataset', 'TarShardDataset', 'connect_worker', 'list_files']

_log = logging.getLogger('cacheserv_client')


def connect_worker(worker_id=None):
    """``DataLoader(..., worker_init_fn=connect_worker)``: each worker opens its connection to
    the server as it starts, beside the others, so its first item pays no connection set-up.
    Without it a worker connects on its first item. Does nothing outside a worker, or for a
    dataset without a ``client``."""
    info = get_worker_info()
    client = getattr(info.dataset, 'client', None) if info is not None else None
    if client is not None:
        client.connect()


def list_files(client, directory='', recursive=True):
    """Paths (under the server's root, in path order) of the files under ``directory``."""
    prefix = directory.strip('/') + '/' if directory.strip('/') else ''
    return [prefix + r for r in _walk(client, prefix, recursive)]


def _walk(client, prefix, recursive):
    """Paths of the files under ``prefix``, relative to it: one streamed ``tree`` listing,
    or, not recursive, one ``ls``."""
    if not recursive:
        return [e['name'] for e in client.ls(prefix) if e['type'] == 'file']
    return [f['path'][len(prefix):] for f in client.tree(prefix)]


class CacheservDataset(Dataset):
    """``dataset[i]`` is ``transform(bytes of files[i])`` (the raw bytes without a transform),
    or ``(that, labels[i])`` when the dataset has labels.

    ``server``, ``token``, ``fallback_root``: as for ``Client``.
    """

    def __init__(self, files, server=None, transform=None, labels=None, classes=None, fallback_root=None, token=None):
        self.files = list(files)
        self.labels = None if labels is None else list(labels)
        if self.labels is not None and len(self.labels) != len(self.files):
            raise ValueError('%d labels for %d files' % (len(self.labels), len(self.files)))
        self.classes = None if classes is None else list(classes)
        # Connects lazily, once per process; pickles as its settings.
        self.client = Client(server, token=token, fallback_root=fallback_root)
        self.transform = transform

    @classmethod
    def from_dir(cls, directory='', server=None, transform=None, suffix='', recursive=True, labels=False, fallback_root=None, token=None):
        """Every file under ``directory`` on the server whose name ends with ``suffix``, in
        path order; with ``recursive=False`` only those directly in it.

        ``labels=True`` reads an ImageFolder tree (``directory/CLASS/.../file``): the classes
        are the names of the directories in ``directory``, sorted, and each item is
        ``(data, class_index)``; files directly in ``directory`` are left out. Raises
        ValueError when no file matches."""
        client = Client(server, token=token, fallback_root=fallback_root)
        prefix = directory.strip('/') + '/' if directory.strip('/') else ''
        try:
            rels = _walk(client, prefix, recursive or labels)
        finally:
            client.close()
        rels = [r for r in rels if r.endswith(suffix)]
        classes = None
        targets = None
        if labels:
            rels = [r for r in rels if '/' in r]
            classes = sorted(set(r.split('/', 1)[0] for r in rels))
            index = {c: i for i, c in enumerate(classes)}
            targets = [index[r.split('/', 1)[0]] for r in rels]
        if not rels:
            what = 'files in class directories' if labels else 'files'
            raise ValueError('no %s%s under %r on %s%s' % (
                what, " ending in '%s'" % suffix if suffix else '', directory or '/', client.address,
                '' if recursive or labels else ' (recursive=False: subdirectories were not looked into)'))
        return cls([prefix + r for r in rels], server, transform, targets, classes, fallback_root, token)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            # A whole batch of indices (a BatchSampler as the sampler, batch_size=None: see loader()).
            return self.__getitems__(index)
        return self._item(index, self.client.read(self.files[index]))

    def __getitems__(self, indices):
        """The items of a batch, read in one round trip on the server's host (the DataLoader
        of torch 2 calls this with each batch's indices; see ``loader()`` for older ones)."""
        return [self._item(i, data) for i, data in zip(indices, self.client.read_batch([self.files[i] for i in indices]))]

    def _item(self, index, data):
        if self.transform is not None:
            data = self.transform(data)
        return data if self.labels is None else (data, self.labels[index])

    def loader(self, batch_size=64, shuffle=False, drop_last=False, collate_fn=None, generator=None, read_ahead=True, **kwargs):
        """A DataLoader over this dataset whose workers fetch each batch with one request
        (``__getitems__``), on any torch version: the batch sampler is its sampler, so each
        fetch is a whole batch. Other arguments (``num_workers``, ``pin_memory``, ...) go to
        the DataLoader; ``collate_fn`` defaults to torch's ``default_collate``. Each worker
        connects as it starts (``connect_worker``, before a ``worker_init_fn`` given here), so
        its first batch costs one round trip.

        With ``read_ahead`` (the default), each epoch's files are announced to the server, in
        the order the epoch will read them, once its first batch is out (an idle ``warm`` list
        from a thread of the main process): the server loads what it does not hold, a few files
        at a time, whenever no request is reading the disk, so the disk works while cached
        batches are served (a restart after a crash, say) and a later batch finds its files
        loaded. It never evicts to do so, and stops with the epoch."""
        from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler
        try:
            from torch.utils.data import default_collate
        except ImportError:  # torch < 1.11
            from torch.utils.data.dataloader import default_collate
        order = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        kwargs['worker_init_fn'] = _ConnectFirst(kwargs.get('worker_init_fn'))
        batches = BatchSampler(order, batch_size, drop_last)
        if read_ahead:
            # With workers, it asks for prefetch_factor batches a worker as it starts, then one
            # more as each arrives, before handing that one on; without, one as each is wanted.
            workers = kwargs.get('num_workers', 0)
            batches = _Announced(batches, self, workers * (kwargs.get('prefetch_factor') or 2) + 1 if workers > 0 else 1)
        return DataLoader(self, sampler=batches, batch_size=None,
                          collate_fn=collate_fn or default_collate, **kwargs)


class _Announced(object):
    """A batch sampler that tells the server, as each epoch starts, which files the epoch
    will read and in what order (see ``CacheservDataset.loader``)."""

    def __init__(self, batches, dataset, first=1):
        self.batches = batches
        self.dataset = dataset
        #: Batches the DataLoader asks for until it has handed on the first one.
        self.first = first

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        batches = iter(self.batches)
        # The batches a DataLoader asks for until it has handed on the first go out at once: only
        # then is the rest drawn and announced, so the announcement takes nothing from the first
        # batch (the time a restarted script waits for).
        for batch in itertools.islice(batches, self.first):
            yield batch
        rest = list(batches)
        ahead = _ReadAhead(self.dataset.client, [self.dataset.files[i] for batch in rest for i in batch])
        try:
            for batch in rest:
                yield batch
        finally:
            ahead.stop()


class _ReadAhead(object):
    """``paths`` sent to the server as ``warm`` lists, in order, from a thread with a
    connection of its own (a copy of ``client``'s settings), until the server's cache is full,
    the list ends, or ``stop()``. Failures only end it: reads do not depend on it."""

    def __init__(self, client, paths):
        self._client = Client.__new__(Client)
        self._client.__setstate__(client.__getstate__())
        self._paths = paths
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._sock = None
        #: Every path was announced (or the server's cache filled): it ended by itself.
        self.finished = False
        self._thread = threading.Thread(target=self._run, name='cacheserv-read-ahead', daemon=True)
        if paths:
            self._thread.start()

    def _run(self):
        c = self._client
        try:
            for batch in c._warm_batches(self._paths):
                # The connection this request goes on, known to stop() before it is sent.
                c.connect()
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self._sock = c._sock
                if c.warm(paths=batch, idle=True)['full']:
                    break
            self.finished = True
        except Exception as e:  # noqa: BLE001 (read-ahead is a hint; the reads report their own errors)
            if not self._stopped.is_set():
                _log.debug('read-ahead ended: %s', e)
        finally:
            c.close()

    def stop(self):
        """Stop now: the request under way is cut off (the server stops it when its connection
        closes), and no other is sent."""
        with self._lock:
            self._stopped.set()
            sock = self._sock
        if sock is not None:
            try:
                # Wakes the thread out of its wait for the server's answer; close() is its to do.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self, timeout=None):
        """Wait for the thread to end; True once it has (or never started)."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()


class _ConnectFirst(object):
    """A ``worker_init_fn``: ``connect_worker``, then the caller's own (a class, not a
    closure, so that spawned workers can unpickle it)."""

    def __init__(self, then=None):
        self.then = then

    def __call__(self, worker_id):
        connect_worker(worker_id)
        if self.then is not None:
            self.then(worker_id)


def _split_key(name):
    """WebDataset's sample key and field: ``dir/000123.seg.png`` -> (``dir/000123``, ``seg.png``)."""
    slash = name.rfind('/') + 1
    dot = name.find('.', slash)
    return (name, '') if dot < 0 else (name[:dot], name[dot + 1:])


class TarShardDataset(IterableDataset):
    """Samples of tar shards, WebDataset-style: consecutive members with the same key
    (the name up to the first dot of its base name) form one sample, a dict
    ``{'__key__': key, '__shard__': shard, FIELD: bytes, ...}`` (``a/0001.jpg`` and
    ``a/0001.cls`` give ``{'__key__': 'a/0001', 'jpg': ..., 'cls': ...}``).
    ``transform`` is applied to each sample. With ``group=False`` the items are
    ``(member name, bytes)``.

    Under a DataLoader with workers, worker ``i`` of ``n`` reads shards ``i, i+n,
    i+2n, ...`` (so use at least as many shards as workers); each shard is read
    from its start to its end as one stream with ``readahead`` bytes per request.
    ``shards``: paths under the server's root, or ``directory=`` and ``suffix``
    (default ``.tar``) to take every matching file under a directory.
    """

    def __init__(self, shards=None, server=None, transform=None, group=True, readahead=4 * 1024 * 1024,
                 token=None, directory=None, suffix='.tar'):
        self.client = Client(server, token=token)
        if shards is None:
            if directory is None:
                raise ValueError('give the shards, or directory= to list them')
            shards = [p for p in list_files(self.client, directory) if p.endswith(suffix)]
            self.client.close()
            self.client = Client(server, token=token)
        self.shards = list(shards)
        if not self.shards:
            raise ValueError('no shards' + (" ending in '%s' under %r" % (suffix, directory) if directory is not None else ''))
        self.transform = transform
        self.group = group
        self.readahead = int(readahead)

    def worker_shards(self):
        """The shards this process reads: all of them, or its DataLoader worker's share."""
        info = get_worker_info()
        return self.shards if info is None else self.shards[info.id::info.num_workers]

    def members(self, shard):
        """``(name, bytes)`` of each file of one shard, in order, read as a stream."""
        # tarfile reads 10 KiB at a time: a BufferedReader serves those in C, and fills
        # itself ``readahead`` bytes at a time straight into its buffer.
        with io.BufferedReader(self.client.open(shard, readahead=0), buffer_size=self.readahead) as f:
            for item in iter_tar(f, check=False):
                yield item

    def __iter__(self):
        for shard in self.worker_shards():
            if not self.group:
                for item in self.members(shard):
                    yield item if self.transform is None else self.transform(item)
                continue
            sample = None
            for name, data in self.members(shard):
                key, field = _split_key(name)
                if sample is not None and sample['__key__'] != key:
                    yield sample if self.transform is None else self.transform(sample)
                    sample = None
                if sample is None:
                    sample = {'__key__': key, '__shard__': shard}
                sample[field] = data
            if sample is not None:
                yield sample if self.transform is None else self.transform(sample)
