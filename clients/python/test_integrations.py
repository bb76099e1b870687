"""Tests of the package with the libraries it plugs into: torch datasets under a
DataLoader (0 workers, 2 forked, 2 spawned), the fsspec filesystem, pandas
through ``cacheserv://``, and ``pip install`` into a fresh venv with no index.

Run by spec/python/python-libraries.spec.ts, which starts the servers:

    CACHESERV_TEST_ROOT          the directory the servers serve (these tests write their fixtures in it)
    CACHESERV_TEST_SERVER        a TCP server
    CACHESERV_TEST_UNIX_SERVER   the same root over unix:/path
    CACHESERV_TEST_IDLE_SERVER   a server that closes a connection idle for CACHESERV_TEST_IDLE_MS

Needs torch, fsspec, numpy, pandas and PIL; prints one line per test and exits 1 on failure.
"""

import hashlib
import io
import os
import pickle
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fsspec  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, get_worker_info  # noqa: E402

import cacheserv_client.fsspec  # noqa: E402,F401  (registers cacheserv://)
from cacheserv_client import Client  # noqa: E402
from cacheserv_client.fsspec import CacheservFileSystem  # noqa: E402
from cacheserv_client.torch import CacheservDataset, TarShardDataset, _ReadAhead, connect_worker  # noqa: E402

ENV = os.environ
ROOT = ENV['CACHESERV_TEST_ROOT']
SERVER = ENV['CACHESERV_TEST_SERVER']
UNIX_SERVER = ENV['CACHESERV_TEST_UNIX_SERVER']
IDLE_SERVER = ENV['CACHESERV_TEST_IDLE_SERVER']
IDLE_S = int(ENV['CACHESERV_TEST_IDLE_MS']) / 1000.0
HOSTPORT = SERVER.split('://', 1)[-1]

CLASSES = ('cat', 'dog', 'eel')
SHARDS = ['shards/train-%04d.tar' % i for i in range(4)]


def _write(rel, data):
    full = os.path.join(ROOT, rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, 'wb') as f:
        f.write(data)


def _png(rng, label):
    pixels = np.frombuffer(rng.randbytes(8 * 8 * 3), dtype=np.uint8).reshape(8, 8, 3).copy()
    pixels[0, 0] = label  # recoverable from the decoded image
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format='PNG')
    return out.getvalue()


def make_fixtures():
    rng = random.Random(20)
    for c, name in enumerate(CLASSES):
        for i in range(7 + c):
            _write('images/%s/%03d.png' % (name, i), _png(rng, c))
    _write('images/README', b'not a class: left out by labels=True')
    for i, rel in enumerate(SHARDS):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            for k in range(5 + i):
                key = 'part%d/%06d' % (i, k)
                size = rng.choice((0, 1, 511, 512, 513, 70000, 300000))
                for field, data in (('bin', rng.randbytes(size)), ('cls', b'%d' % (k % 3))):
                    info = tarfile.TarInfo('%s.%s' % (key, field))
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        _write(rel, buf.getvalue())
    _write('big.bin', rng.randbytes(3 * 1024 * 1024 + 17))
    for d in ('ahead', 'ahead-off'):
        for i in range(40):
            _write('%s/%03d.bin' % (d, i), rng.randbytes(20000 + i))
    frame = pd.DataFrame({'id': range(500), 'x': [rng.random() for _ in range(500)], 'name': ['n%d' % i for i in range(500)]})
    frame.to_csv(os.path.join(ROOT, 'table.csv'), index=False)


def local(rel):
    with open(os.path.join(ROOT, rel), 'rb') as f:
        return f.read()


def local_samples():
    """The samples of SHARDS, read with tarfile from the files themselves."""
    out = {}
    for rel in SHARDS:
        with tarfile.open(os.path.join(ROOT, rel)) as tar:
            for m in tar:
                key, _, field = m.name.partition('.')
                out.setdefault(key, {'__key__': key, '__shard__': rel})[field] = tar.extractfile(m).read()
    return out


# Transforms are module-level functions so that spawned workers can unpickle them.
def decode_png(data):
    return torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert('RGB'))).permute(2, 0, 1)


def with_worker(sample):
    info = get_worker_info()
    sample['__worker__'] = -1 if info is None else info.id
    sample['__pid__'] = os.getpid()
    return sample


def loaders(dataset, **kwargs):
    """The same dataset under 0 workers, 2 forked workers and 2 spawned workers."""
    yield 'workers=0', DataLoader(dataset, num_workers=0, **kwargs)
    for ctx in ('fork', 'spawn'):
        yield '2 %s workers' % ctx, DataLoader(dataset, num_workers=2, multiprocessing_context=ctx, **kwargs)


def connect_and_check(worker_id):
    """worker_init_fn: connect_worker, then make sure the worker is connected before its first item."""
    connect_worker(worker_id)
    if get_worker_info().dataset.client._sock is None:
        raise AssertionError('worker %d is not connected after connect_worker' % worker_id)


def check_connected(worker_id):
    """worker_init_fn given to ds.loader: by the time it runs, the worker is connected."""
    if get_worker_info().dataset.client._sock is None:
        raise AssertionError('worker %d is not connected before its worker_init_fn' % worker_id)


def wait_for_idle_closes(test):
    """Persistent workers live on, but the idle server closes their connections: wait until
    only the one asking is open, so the next epoch starts on closed connections."""
    with Client(IDLE_SERVER) as c:
        deadline = time.monotonic() + 10
        while c.stats()['connections'] > 1 and time.monotonic() < deadline:
            time.sleep(IDLE_S / 3)
        test.assertEqual(c.stats()['connections'], 1)


class MapDataset(unittest.TestCase):
    def test_raw_bytes_with_every_worker_kind(self):
        ds = CacheservDataset.from_dir('images', server=SERVER)
        want = [p for p in sorted(_walk_local('images'))]
        self.assertEqual(ds.files, want)
        for what, loader in loaders(ds, batch_size=None):
            with self.subTest(what):
                got = list(loader)
                self.assertEqual(len(got), len(want))
                for rel, data in zip(want, got):
                    self.assertEqual(hashlib.sha256(data).hexdigest(), hashlib.sha256(local(rel)).hexdigest(), rel)

    def test_loader_fetches_whole_batches_in_order(self):
        ds = CacheservDataset.from_dir('images', server=SERVER)
        want = [hashlib.sha256(local(r)).hexdigest() for r in ds.files]
        for workers in (0, 2):
            with self.subTest(workers=workers):
                batches = list(ds.loader(batch_size=5, num_workers=workers))
                self.assertEqual([len(b) for b in batches[:-1]], [5] * (len(batches) - 1))
                self.assertEqual([hashlib.sha256(d).hexdigest() for b in batches for d in b], want)
        got = ds.__getitems__([2, 0])
        self.assertEqual([hashlib.sha256(d).hexdigest() for d in got], [want[2], want[0]])

    def test_workers_connect_as_they_start(self):
        ds = CacheservDataset.from_dir('images', server=SERVER)
        connect_worker(0)  # outside a worker: nothing to do
        for ctx in ('fork', 'spawn'):
            with self.subTest(ctx):
                loader = DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context=ctx, worker_init_fn=connect_and_check)
                got = list(loader)
                self.assertEqual([hashlib.sha256(d).hexdigest() for d in got], [hashlib.sha256(local(r)).hexdigest() for r in ds.files])

    def test_loader_workers_connect_before_their_first_batch(self):
        # ds.loader makes each worker connect as it starts, then runs the caller's worker_init_fn.
        ds = CacheservDataset.from_dir('images', server=SERVER)
        for ctx in ('fork', 'spawn'):
            with self.subTest(ctx):
                loader = ds.loader(batch_size=4, num_workers=2, multiprocessing_context=ctx, worker_init_fn=check_connected)
                got = [d for b in loader for d in b]
                self.assertEqual(len(got), len(ds.files))

    def test_labels_decoded_images_in_batches(self):
        ds = CacheservDataset.from_dir('images', server=SERVER, transform=decode_png, labels=True)
        self.assertEqual(ds.classes, list(CLASSES))
        self.assertNotIn('images/README', ds.files)
        for what, loader in loaders(ds, batch_size=4):
            with self.subTest(what):
                n = 0
                for images, labels in loader:
                    self.assertEqual(tuple(images.shape[1:]), (3, 8, 8))
                    # The label the image carries in its first pixel is the label of its directory.
                    self.assertTrue(torch.equal(images[:, 0, 0, 0].long(), labels))
                    n += len(labels)
                self.assertEqual(n, len(ds))

    def test_persistent_workers_survive_an_idle_close_between_epochs(self):
        ds = CacheservDataset.from_dir('images', server=IDLE_SERVER)
        want = [local(p) for p in ds.files]
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context='fork')
        for epoch in range(3):
            self.assertEqual(list(loader), want, 'epoch %d' % epoch)
            wait_for_idle_closes(self)
        # In this process too.
        self.assertEqual(ds[0], want[0])
        time.sleep(IDLE_S * 3)
        self.assertEqual(ds[1], want[1])


def _walk_local(rel):
    for dirpath, _, files in os.walk(os.path.join(ROOT, rel)):
        for f in files:
            yield os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, '/')


def cached(client, names):
    return [n for n in names if client.stat(n)['cached']]


class ReadAhead(unittest.TestCase):
    """loader() announces each epoch's files to the server, which loads them ahead of the reads."""

    def epoch_start(self, directory, **kwargs):
        names = ['%s/%03d.bin' % (directory, i) for i in range(40)]
        ds = CacheservDataset(names, server=SERVER)
        order = torch.Generator()
        order.manual_seed(7)
        it = iter(ds.loader(batch_size=4, shuffle=True, generator=order, num_workers=0, collate_fn=list, **kwargs))
        # Without workers, the epoch is announced as the second batch is asked for.
        first = next(it) + next(it)
        self.assertEqual(len(first), 8)
        # The batches were read in this process: its connection is the dataset's, not the read-ahead's.
        self.addCleanup(ds.client.close)
        return names, first, it, ds

    def test_later_batches_are_loaded_before_they_are_asked_for(self):
        with Client(SERVER) as c:
            before = c.stats()['connections']
            # Nothing else reads these files: a file is cached only if this epoch loaded it.
            names, first, it, ds = self.epoch_start('ahead')
            deadline = time.monotonic() + 20
            while len(cached(c, names)) < len(names) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(cached(c, names), names, '2 batches of 10 read; the other 8 loaded ahead')
            # The rest of the epoch is still exact.
            rest = [d for batch in it for d in batch]
            self.assertEqual(sorted(first + rest), sorted(local(n) for n in names))
            ds.client.close()
            # The epoch is over: so is its read-ahead, connection and all.
            deadline = time.monotonic() + 10
            while c.stats()['connections'] > before and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(c.stats()['connections'], before)

    def test_stop_cuts_a_read_ahead_off_and_closes_its_connection(self):
        names = ['ahead/%03d.bin' % i for i in range(40)]
        with Client(SERVER) as c:
            c.warm(paths=names)
            before = c.stats()['connections']
            # A long announcement: seconds of work, stopped as soon as it is under way.
            ahead = _ReadAhead(c, names * 2500)
            deadline = time.monotonic() + 20
            while c.stats()['connections'] == before and time.monotonic() < deadline:
                time.sleep(0.01)
            ahead.stop()
            self.assertTrue(ahead.join(20))
            self.assertFalse(ahead.finished, 'stopped before the end of its list')
            deadline = time.monotonic() + 10
            while c.stats()['connections'] > before and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertEqual(c.stats()['connections'], before)

    def test_read_ahead_false_loads_only_what_is_read(self):
        with Client(SERVER) as c:
            names, first, it, _ = self.epoch_start('ahead-off', read_ahead=False)
            time.sleep(0.5)
            read = sorted(n for n in names if local(n) in first)
            self.assertEqual(len(read), 8)
            self.assertEqual(cached(c, names), read)
            del it


class ShardDataset(unittest.TestCase):
    def test_samples_byte_exact_and_shards_split_across_workers(self):
        want = local_samples()
        ds = TarShardDataset(directory='shards', server=SERVER, transform=with_worker)
        self.assertEqual(ds.shards, SHARDS)
        for what, loader in loaders(ds, batch_size=None):
            with self.subTest(what):
                got = list(loader)
                self.assertEqual(sorted(s['__key__'] for s in got), sorted(want))
                workers = {}
                for s in got:
                    w = want[s['__key__']]
                    self.assertEqual(s['__shard__'], w['__shard__'])
                    self.assertEqual((s['bin'], s['cls']), (w['bin'], w['cls']), s['__key__'])
                    workers.setdefault(s['__shard__'], set()).add(s['__worker__'])
                if what == 'workers=0':
                    self.assertEqual(set().union(*workers.values()), {-1})
                else:
                    # Each shard read by one worker: worker i takes shards i, i+2.
                    self.assertEqual(workers, {rel: {i % 2} for i, rel in enumerate(SHARDS)})

    def test_members_and_an_idle_close_between_epochs(self):
        ds = TarShardDataset(SHARDS[:2], server=IDLE_SERVER, group=False)
        want = []
        for rel in SHARDS[:2]:
            with tarfile.open(os.path.join(ROOT, rel)) as tar:
                want.extend((m.name, tar.extractfile(m).read()) for m in tar)
        loader = DataLoader(ds, batch_size=None, num_workers=2, persistent_workers=True, multiprocessing_context='spawn')
        for epoch in range(2):
            # The DataLoader's collation turns each (name, bytes) into a list.
            self.assertEqual(sorted(tuple(m) for m in loader), sorted(want), 'epoch %d' % epoch)
            wait_for_idle_closes(self)
        self.assertEqual(list(ds), want)
        time.sleep(IDLE_S * 3)
        self.assertEqual(list(ds), want)

    def test_pickles_without_a_connection(self):
        ds = TarShardDataset(SHARDS, server=SERVER)
        self.assertEqual(len(list(ds)), len(local_samples()))
        copy = pickle.loads(pickle.dumps(ds))
        self.assertEqual([s['__key__'] for s in copy], [s['__key__'] for s in ds])


class FsspecFileSystem(unittest.TestCase):
    def test_open_seek_and_read_ranges(self):
        want = local('big.bin')
        with fsspec.open('cacheserv://%s/big.bin' % HOSTPORT, 'rb', block_size=64 * 1024) as f:
            self.assertEqual(f.size, len(want))
            rng = random.Random(3)
            for _ in range(50):
                at = rng.randrange(len(want))
                n = rng.randrange(200000)
                f.seek(at)
                self.assertEqual(f.read(n), want[at:at + n])
            f.seek(-5, os.SEEK_END)
            self.assertEqual(f.read(), want[-5:])

    def test_cat_file_and_cat_ranges(self):
        fs = fsspec.filesystem('cacheserv', server=SERVER)
        want = local('big.bin')
        self.assertEqual(fs.cat_file('big.bin'), want)
        self.assertEqual(fs.cat_file('cacheserv://%s/big.bin' % HOSTPORT, start=-100), want[-100:])
        self.assertEqual(fs.cat_file('big.bin', start=10, end=-10), want[10:-10])
        self.assertEqual(fs.cat_file('big.bin', start=len(want) + 5), b'')
        starts = [0, 1, 1024 * 1024 - 3, len(want) - 1, 5, len(want) + 10]
        ends = [0, 2, 2 * 1024 * 1024 + 9, len(want), None, len(want) + 20]
        self.assertEqual(fs.cat_ranges(['big.bin'] * len(starts), starts, ends),
                         [want[s:e] for s, e in zip(starts, ends)])
        got = fs.cat_ranges(['big.bin', 'no/such.bin', 'table.csv'], [0, 0, 3], [10, 10, 30])
        self.assertEqual(got[0], want[:10])
        self.assertIsInstance(got[1], FileNotFoundError)
        self.assertEqual(got[2], local('table.csv')[3:30])
        with self.assertRaises(FileNotFoundError):
            fs.cat_ranges(['no/such.bin'], [0], [1], on_error='raise')

    def test_ls_info_and_missing_paths(self):
        fs = fsspec.filesystem('cacheserv', server=SERVER)
        names = fs.ls('shards', detail=False)
        self.assertEqual(names, SHARDS)
        entries = {e['name']: e for e in fs.ls('/')}
        self.assertEqual(entries['big.bin'], {'name': 'big.bin', 'size': len(local('big.bin')), 'type': 'file'})
        self.assertEqual(entries['images']['type'], 'directory')
        self.assertEqual(fs.info('images/cat/000.png')['size'], len(local('images/cat/000.png')))
        self.assertEqual(fs.info('images')['type'], 'directory')
        self.assertEqual(fs.ls('big.bin', detail=False), ['big.bin'])
        self.assertTrue(fs.isdir('images') and fs.isfile('big.bin') and not fs.exists('nope'))
        self.assertEqual(sorted(fs.find('images/dog')), sorted('images/dog/%03d.png' % i for i in range(8)))
        with self.assertRaises(FileNotFoundError):
            fs.info('nope')
        with self.assertRaises(FileNotFoundError):
            fs.open('nope')

    def test_server_from_environment_and_unix_socket(self):
        old = os.environ.get('CACHESERV_SERVER')
        os.environ['CACHESERV_SERVER'] = SERVER
        try:
            with fsspec.open('cacheserv:///table.csv', 'rb') as f:
                self.assertEqual(f.read(), local('table.csv'))
        finally:
            if old is None:
                del os.environ['CACHESERV_SERVER']
            else:
                os.environ['CACHESERV_SERVER'] = old
        with fsspec.open('cacheserv:///table.csv', 'rb', server=UNIX_SERVER) as f:
            self.assertEqual(f.read(), local('table.csv'))

    def test_filesystem_pickles_as_its_settings(self):
        fs = CacheservFileSystem(server=SERVER)
        self.assertEqual(fs.cat_file('table.csv'), local('table.csv'))
        copy = pickle.loads(pickle.dumps(fs))
        self.assertEqual(copy.server, SERVER)
        self.assertEqual(copy.cat_file('table.csv'), local('table.csv'))


class Pandas(unittest.TestCase):
    def test_read_csv_through_cacheserv_url(self):
        got = pd.read_csv('cacheserv://%s/table.csv' % HOSTPORT)
        pd.testing.assert_frame_equal(got, pd.read_csv(os.path.join(ROOT, 'table.csv')))
        got = pd.read_csv('cacheserv:///table.csv', storage_options={'server': UNIX_SERVER})
        self.assertEqual(len(got), 500)


class PipInstall(unittest.TestCase):
    def test_installs_into_a_fresh_venv_without_an_index(self):
        with tempfile.TemporaryDirectory(prefix='cacheserv-venv-') as tmp:
            # A copy, so the build leaves nothing (build/, *.egg-info) in the source tree.
            src = os.path.join(tmp, 'src')
            shutil.copytree(HERE, src, ignore=shutil.ignore_patterns('__pycache__', 'test_*', 'build', '*.egg-info'))
            venv = os.path.join(tmp, 'venv')
            # The system site gives the venv pip, setuptools and fsspec as Debian installs them.
            subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip', venv], check=True)
            py = os.path.join(venv, 'bin', 'python')
            env = dict(os.environ, PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1',
                       # Any attempt to reach a network fails at once.
                       http_proxy='http://127.0.0.1:9', https_proxy='http://127.0.0.1:9', PYTHONPATH='')
            r = subprocess.run([py, '-m', 'pip', 'install', '--no-index', '--no-build-isolation', src],
                               env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.assertEqual(r.returncode, 0, r.stdout.decode(errors='replace'))
            # From elsewhere, without importing cacheserv_client.fsspec: fsspec finds it by its entry point.
            check = ('import sys, cacheserv_client\n'
                     'assert cacheserv_client.__file__.startswith(sys.prefix), cacheserv_client.__file__\n'
                     # The client alone imports nothing outside the standard library.
                     'assert not {"fsspec", "torch", "numpy"} & set(sys.modules), sorted(sys.modules)\n'
                     'import fsspec\n'
                     'fs = fsspec.filesystem("cacheserv", server=sys.argv[1])\n'
                     'sys.stdout.buffer.write(fs.cat_file("table.csv"))\n')
            r = subprocess.run([py, '-c', check, SERVER], env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            self.assertEqual(r.returncode, 0, r.stderr.decode(errors='replace'))
            self.assertEqual(r.stdout, local('table.csv'))


def main():
    make_fixtures()
    # Workers of every test read through connections of their own; the parent's stays usable.
    Client(SERVER).close()
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__]))
    print('python %s, torch %s, fsspec %s, pandas %s, %d tests' % (
        sys.version.split()[0], torch.__version__, fsspec.__version__, pd.__version__, result.testsRun))
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
