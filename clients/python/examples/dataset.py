"""A map-style dataset over files served by cacheserv-pipe, PyTorch style.

PyTorch only needs ``__len__`` and ``__getitem__`` from a map-style dataset, so
this class does not import torch; ``torch.utils.data.DataLoader`` takes it as
it is. Each DataLoader worker process opens its own connection on first use:
the Client notices it runs in a new process (fork) or was unpickled (spawn).

    python examples/dataset.py [--server tcp://127.0.0.1:7070] [--labels] [--fallback-root /data] DIR

``CacheservDataset.from_dir(DIR)`` takes every file under DIR, recursively;
``labels=True`` reads an ImageFolder tree (one directory per class) and yields
``(data, class_index)``.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from cacheserv_client import Client  # noqa: E402


class CacheservDataset(object):
    """``dataset[i]`` is ``transform(bytes of files[i])`` (the raw bytes without a transform),
    or ``(that, labels[i])`` when the dataset has labels.

    ``fallback_root``: a local directory with the same files as the server's root. When the
    server cannot be reached, items are read from there (a warning is printed once per
    process; see ``Client(fallback_root=...)``).
    """

    def __init__(self, files, server=None, transform=None, labels=None, classes=None, fallback_root=None):
        self.files = list(files)
        self.labels = None if labels is None else list(labels)
        if self.labels is not None and len(self.labels) != len(self.files):
            raise ValueError('%d labels for %d files' % (len(self.labels), len(self.files)))
        self.classes = None if classes is None else list(classes)
        # Connects lazily, once per process.
        self.client = Client(server, fallback_root=fallback_root)
        self.transform = transform

    @classmethod
    def from_dir(cls, directory='', server=None, transform=None, suffix='', recursive=True, labels=False, fallback_root=None):
        """Every file under ``directory`` on the server whose name ends with ``suffix``, in
        path order; with ``recursive=False`` only those directly in it.

        ``labels=True`` reads an ImageFolder tree (``directory/CLASS/.../file``): the classes
        are the names of the directories in ``directory``, sorted, and each item is
        ``(data, class_index)``; files directly in ``directory`` are left out. Raises
        ValueError when no file matches."""
        client = Client(server, fallback_root=fallback_root)
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
        return cls([prefix + r for r in rels], server, transform, targets, classes, fallback_root)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        data = self.client.read(self.files[index])
        if self.transform is not None:
            data = self.transform(data)
        return data if self.labels is None else (data, self.labels[index])


def _walk(client, prefix, recursive):
    """Paths (relative to ``prefix``) of the files under it, in path order."""
    out = []
    for e in client.ls(prefix):
        if e['type'] == 'file':
            out.append(e['name'])
        elif e['type'] == 'dir' and recursive:
            out.extend(e['name'] + '/' + r for r in _walk(client, prefix + e['name'] + '/', True))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--server', default=None, help='default: $CACHESERV_SERVER, else tcp://127.0.0.1:7070')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--labels', action='store_true', help='DIR is an ImageFolder tree: one directory per class')
    parser.add_argument('--fallback-root', default=None, help='read the files here when the server cannot be reached')
    parser.add_argument('directory', nargs='?', default='')
    args = parser.parse_args()

    try:
        dataset = CacheservDataset.from_dir(args.directory, args.server, transform=len, labels=args.labels, fallback_root=args.fallback_root)
    except ValueError as e:
        sys.exit('dataset.py: %s' % e)
    if args.labels:
        dataset.labels = None  # sizes only below
        print('%d classes: %s' % (len(dataset.classes), ', '.join(dataset.classes[:10]) + (', ...' if len(dataset.classes) > 10 else '')))
    try:
        from torch.utils.data import DataLoader
    except ImportError:
        print('torch is not installed; reading the dataset in this process', file=sys.stderr)
        sizes = [dataset[i] for i in range(len(dataset))]
    else:
        loader = DataLoader(dataset, batch_size=None, num_workers=args.workers)
        sizes = [int(n) for n in loader]
    print('%d files, %d bytes' % (len(sizes), sum(sizes)))


if __name__ == '__main__':
    main()
