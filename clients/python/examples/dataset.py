"""A map-style dataset over files served by cacheserv-pipe, PyTorch style.

PyTorch only needs ``__len__`` and ``__getitem__`` from a map-style dataset, so
this class does not import torch; ``torch.utils.data.DataLoader`` takes it as
it is. Each DataLoader worker process opens its own connection on first use:
the Client notices it runs in a new process (fork) or was unpickled (spawn).

    python examples/dataset.py [--server tcp://127.0.0.1:7070] DIR
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

from cacheserv_client import Client  # noqa: E402


class CacheservDataset(object):
    """``dataset[i]`` is ``transform(bytes of files[i])`` (the raw bytes without a transform)."""

    def __init__(self, files, server=None, transform=None):
        self.files = list(files)
        self.client = Client(server)  # connects lazily, once per process
        self.transform = transform

    @classmethod
    def from_dir(cls, directory, server=None, transform=None, suffix=''):
        """Every file directly under ``directory`` on the server whose name ends with ``suffix``."""
        client = Client(server)
        try:
            names = [e['name'] for e in client.ls(directory) if e['type'] == 'file' and e['name'].endswith(suffix)]
        finally:
            client.close()
        prefix = directory.rstrip('/') + '/' if directory.strip('/') else ''
        return cls([prefix + n for n in names], server, transform)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        data = self.client.read(self.files[index])
        return self.transform(data) if self.transform is not None else data


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--server', default=None, help='default: $CACHESERV_SERVER, else tcp://127.0.0.1:7070')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('directory', nargs='?', default='')
    args = parser.parse_args()

    dataset = CacheservDataset.from_dir(args.directory, args.server, transform=len)
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
