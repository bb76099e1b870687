"""One epoch of a PyTorch DataLoader over a directory of files, as a training
script reads it: 2 workers, batches of 64 in a seeded shuffled order, raw
bytes. Prints {"files", "bytes", "seconds"} as JSON; the epoch is timed from
the first batch asked for to the last one received.

usage: ml-epoch.py local ROOT LIST [cold] [half] [single] | server URL LIST [socket] [half] | drop ROOT LIST
                   | tar-local ROOT SHARDS | tar-server URL SHARDS
LIST is a file of the relative paths, one a line. The tar modes read the
same files packed in tar shards (SHARDS lists them), WebDataset-style: an
IterableDataset whose workers each read their share of the shards with
tarfile, from the page cache or through the server. With `cold`, the files are
first dropped from the page cache (posix_fadvise DONTNEED), so the epoch reads
them from the disk; `drop` only does that. With `half`, the run stops after
half the epoch's batches, as a training script that crashes there would.
With `single`, the files are read by one process, one after another (a
DataLoader with no workers).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients', 'python'))

import torch  # noqa: E402
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, RandomSampler, get_worker_info  # noqa: E402

from cacheserv_client import iter_tar  # noqa: E402
from cacheserv_client.torch import CacheservDataset, TarShardDataset  # noqa: E402
from local_files import LocalFiles  # noqa: E402

BATCH = 64
WORKERS = 2


class LocalShards(IterableDataset):
    """The baseline for shards: each worker reads its share of them with open() and tarfile."""

    def __init__(self, root, shards):
        self.root = root
        self.shards = shards

    def __iter__(self):
        info = get_worker_info()
        for shard in self.shards if info is None else self.shards[info.id::info.num_workers]:
            with open(os.path.join(self.root, shard), 'rb') as f:
                for item in iter_tar(f, check=False):
                    yield item


def as_is(batch):
    return batch


def main():
    mode, where, listing = sys.argv[1:4]
    with open(listing) as f:
        files = [line.rstrip('\n') for line in f if line.strip()]
    order = torch.Generator()
    order.manual_seed(int(os.environ.get('EPOCH_SEED', '0')))
    if mode == 'drop' or 'cold' in sys.argv[4:]:
        for rel in files:
            fd = os.open(os.path.join(where, rel), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        if mode == 'drop':
            return
    if mode.startswith('tar-'):
        ds = LocalShards(where, files) if mode == 'tar-local' else TarShardDataset(files, server=where, group=False)
        loader = DataLoader(ds, batch_size=BATCH, num_workers=WORKERS, collate_fn=as_is)
    elif mode == 'local':
        ds = LocalFiles(where, files)
        loader = DataLoader(ds, sampler=BatchSampler(RandomSampler(ds, generator=order), BATCH, False), batch_size=None,
                            num_workers=0 if 'single' in sys.argv[4:] else WORKERS, collate_fn=as_is)
    else:
        ds = CacheservDataset(files, server=where)
        ds.client.short_circuit = 'socket' not in sys.argv[4:]
        loader = ds.loader(batch_size=BATCH, shuffle=True, generator=order, num_workers=WORKERS, collate_fn=as_is)
    stop = (len(files) + BATCH - 1) // BATCH // 2 if 'half' in sys.argv[4:] else None
    n = 0
    size = 0
    t = time.perf_counter()
    for i, batch in enumerate(loader):
        if i == stop:
            break
        n += len(batch)
        size += sum(len(b[1] if isinstance(b, tuple) else b) for b in batch)
    seconds = time.perf_counter() - t
    print(json.dumps({'files': n, 'bytes': size, 'seconds': seconds}))


if __name__ == '__main__':
    main()
