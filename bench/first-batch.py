"""Time to first batch of a restarted training script: from just after its
imports to the first batch of 64 from a DataLoader (2 workers, a seeded
shuffle) over an ImageFolder tree (ROOT/CLASS/*.jpg), the script building its
index itself. Prints {"ms", "index_ms", "files", "bytes", "labels"} as JSON:
the time, the part of it the index took, the index's length, and the first
batch's bytes and label sum (the same batch whatever read it, for the same
SEED).

usage: first-batch.py server URL SEED | local ROOT SEED | slow ROOT SEED PROCS
server: the index is the server's tree (CacheservDataset.from_dir), each
worker connecting as it starts (ds.loader). local: os.walk, and open() for each item.
slow: local, on slow storage: after the imports and before the clock starts,
the page, dentry and inode caches are dropped and the process joins the
slow-storage group (PROCS, its cgroup.procs; see slow_storage.py).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'clients', 'python'))

# What a DataLoader's first iterator imports, so that the clock starts after every import.
import multiprocessing.popen_fork  # noqa: E402,F401
import multiprocessing.queues  # noqa: E402,F401
import multiprocessing.synchronize  # noqa: E402,F401

import torch  # noqa: E402
from torch.utils.data import BatchSampler, DataLoader, RandomSampler  # noqa: E402

from cacheserv_client.torch import CacheservDataset  # noqa: E402
from local_files import LocalFiles  # noqa: E402
from slow_storage import go_cold  # noqa: E402

BATCH = 64
WORKERS = 2
SUFFIX = '.jpg'


def local_folder(root):
    """ImageFolder's index, raw bytes: os.walk in name order, the classes the top directories."""
    files = []
    for top, dirs, names in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(top, root)
        if rel != '.':
            files.extend(os.path.join(rel, n) for n in sorted(names) if n.endswith(SUFFIX))
    classes = sorted(set(f.split(os.sep, 1)[0] for f in files))
    index = {c: i for i, c in enumerate(classes)}
    return LocalFiles(root, files, [index[f.split(os.sep, 1)[0]] for f in files])


def as_is(batch):
    return batch


def main():
    mode, where, seed = sys.argv[1:4]
    if mode == 'slow':
        go_cold(sys.argv[4])
    order = torch.Generator()
    order.manual_seed(int(seed))
    t = time.perf_counter()
    if mode == 'server':
        ds = CacheservDataset.from_dir('', server=where, suffix=SUFFIX, labels=True)
        index_ms = (time.perf_counter() - t) * 1000
        # ds.loader has each worker connect as it starts.
        loader = ds.loader(batch_size=BATCH, shuffle=True, generator=order, num_workers=WORKERS, collate_fn=as_is)
    else:
        ds = local_folder(where)
        index_ms = (time.perf_counter() - t) * 1000
        loader = DataLoader(ds, sampler=BatchSampler(RandomSampler(ds, generator=order), BATCH, False), batch_size=None,
                            num_workers=WORKERS, collate_fn=as_is)
    batches = iter(loader)  # held: letting it go would shut the workers down inside the timing
    batch = next(batches)
    ms = (time.perf_counter() - t) * 1000
    print(json.dumps({'ms': ms, 'index_ms': index_ms, 'files': len(ds), 'bytes': sum(len(d) for d, _ in batch), 'labels': sum(c for _, c in batch)}))


if __name__ == '__main__':
    main()
