"""Tests of cacheserv_client.py. Standard library only (numpy is used when present).

Run by spec/python/python-client.spec.ts, which starts real servers and passes
their addresses in the environment:

    CACHESERV_TEST_ROOT          the directory the servers serve
    CACHESERV_TEST_FILES         JSON {name: size} of the fixtures written there
    CACHESERV_TEST_SERVER        crc32 pages, 2 MiB cache
    CACHESERV_TEST_MD5_SERVER    md5 pages, a larger cache (warm / evict / stats)
    CACHESERV_TEST_UNIX_SERVER   unix:/path
    CACHESERV_TEST_FAULTY        a proxy that damages server -> client bytes (rate 1e-5, mixed)
    CACHESERV_TEST_HOPELESS      a proxy that damages them beyond repair (rate 0.02, flip)
    CACHESERV_TEST_IDLE_MS       the idle timeout (ms) of the three servers below
    CACHESERV_TEST_IDLE_SERVER   a server with that idle timeout
    CACHESERV_TEST_IDLE_UNIX_SERVER        the same over a unix socket
    CACHESERV_TEST_IDLE_TOKEN_SERVER       the same with a token, CACHESERV_TEST_IDLE_TOKEN
    CACHESERV_TEST_NODE, CACHESERV_TEST_SERVER_BIN   node and the server's bin: the restart
                                 tests start, kill and restart server processes of their own

Without them only the tests against scripted fake servers run. Prints one
line per test, "SKIP name: reason" lines at the end, and exits 1 on failure.
"""

import gc
import hashlib
import io
import json
import multiprocessing
import os
import pickle
import socket
import contextlib
import re
import struct
import subprocess
import sys
import tarfile
import threading
import time
import unittest
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, 'examples'))

import cacheserv_client as cc  # noqa: E402
from cacheserv_client import CacheservError, Client, parse_address  # noqa: E402

KiB = 1024
MiB = 1024 * 1024
PAGE = 256 * KiB

ENV = os.environ
ROOT = ENV.get('CACHESERV_TEST_ROOT')
FILES = json.loads(ENV.get('CACHESERV_TEST_FILES') or '{}')
SERVER = ENV.get('CACHESERV_TEST_SERVER')
MD5_SERVER = ENV.get('CACHESERV_TEST_MD5_SERVER')
UNIX_SERVER = ENV.get('CACHESERV_TEST_UNIX_SERVER')
FAULTY = ENV.get('CACHESERV_TEST_FAULTY')
HOPELESS = ENV.get('CACHESERV_TEST_HOPELESS')
IDLE_S = int(ENV.get('CACHESERV_TEST_IDLE_MS') or 0) / 1000.0
IDLE_SERVER = ENV.get('CACHESERV_TEST_IDLE_SERVER')
IDLE_UNIX_SERVER = ENV.get('CACHESERV_TEST_IDLE_UNIX_SERVER')
IDLE_TOKEN_SERVER = ENV.get('CACHESERV_TEST_IDLE_TOKEN_SERVER')
IDLE_TOKEN = ENV.get('CACHESERV_TEST_IDLE_TOKEN')
NODE = ENV.get('CACHESERV_TEST_NODE')
SERVER_BIN = ENV.get('CACHESERV_TEST_SERVER_BIN')


def sha(data):
    return hashlib.sha256(data).hexdigest()


def disk(rel):
    with open(os.path.join(ROOT, rel), 'rb') as f:
        return f.read()


def disk_sha(rel, offset=0, length=None):
    data = disk(rel)
    end = len(data) if length is None else offset + length
    return sha(data[offset:end])


def needs(*names):
    missing = [n for n in names if not ENV.get(n)]
    return unittest.skipIf(bool(missing), 'no %s in the environment (run through spec/python/python-client.spec.ts)' % ', '.join(missing))


def not_implemented(e):
    """True when the server does not know the command yet (EBADREQ unknown command)."""
    return e.code == 'EBADREQ' and 'unknown command' in e.message


def call_or_skip(test, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except CacheservError as e:
        if not_implemented(e):
            test.skipTest('the server does not implement this command yet: %s' % e.message)
        raise


# --- frames, for the scripted servers -------------------------------------

HEADER = struct.Struct('>HBBIIIBBHI')


def frame(ftype, rid, seq, payload=b'', ck=1, epoch=0):
    if not isinstance(payload, (bytes, bytearray)):
        payload = json.dumps(payload, separators=(',', ':')).encode()
    head = bytearray(HEADER.pack(0xC550, 1, ftype, rid, seq, len(payload), ck, epoch, 0, 0))
    struct.pack_into('>I', head, 20, zlib.crc32(head[:20]))
    if ck == 1:
        digest = struct.pack('>I', zlib.crc32(payload))
    elif ck == 2:
        digest = hashlib.md5(payload).digest()
    else:
        digest = b''
    return bytes(head) + digest + bytes(payload)


def damaged_payload(f):
    b = bytearray(f)
    b[-1] ^= 0x10
    return bytes(b)


def hexbytes(s):
    return bytes.fromhex(''.join(s.split()))


HELLO_CRC32 = {'protocol': 1, 'server': 'fake/0', 'checksum': 'crc32', 'pageSize': 262144}

# The language-neutral wire fixtures, shared with the Node specs.
WIRE = os.path.join(HERE, '..', '..', 'spec', 'fixtures', 'wire')


def wire(name):
    with open(os.path.join(WIRE, name), encoding='utf-8') as f:
        return json.load(f)


# PROTOCOL.md, "Example" (frames.json).
_EX = {f['name']: bytes.fromhex(f['hex']) for f in wire('frames.json')['frames']}
EX_START = _EX['START']
EX_DATA = _EX['DATA crc32']
EX_END = _EX['END']
EX_DATA_MD5 = _EX['DATA md5']
EX_ENOENT = _EX['ERROR']
EX_RESYNC = _EX['RESYNC']
EX_DATA_EPOCH1 = _EX['DATA epoch 1']


def _local_tree_of(rel):
    """Files under ROOT/rel as ``tree`` lists them: depth first, names sorted, hidden upload temporaries left out."""
    out = []

    def visit(path, rel):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            child = rel + '/' + name if rel else name
            if os.path.isdir(full):
                visit(full, child)
            elif os.path.isfile(full) and not name.endswith('.cacheserv-tmp'):
                out.append({'path': child, 'size': os.path.getsize(full)})

    visit(os.path.join(ROOT, rel) if rel else ROOT, rel)
    return out

class FakeServer(object):
    """A scripted server on loopback: sends HELLO (or ``greeting``) on each connection, then
    calls ``handler(server, conn, request)`` for every request line. Records every request."""

    def __init__(self, handler=None, hello=HELLO_CRC32, greeting=None, ck=1):
        self.handler = handler or (lambda s, c, r: None)
        self.greeting = greeting if greeting is not None else frame(1, 0, 0, hello, ck=ck)
        self.requests = []
        self.errors = []
        self.connections = 0
        self.state = {}
        self._conns = []
        self._stop = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.url = 'tcp://127.0.0.1:%d' % self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.02)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.connections += 1
            self._conns.append(conn)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                conn.sendall(self.greeting)
                f = conn.makefile('rb')
                for line in f:
                    req = json.loads(line)
                    self.requests.append(req)
                    self.handler(self, conn, req)
            except (OSError, ValueError):
                pass
            except Exception as e:  # a bug in a script: fail the test
                self.errors.append(e)
            finally:
                conn.close()

    def ops(self, op):
        return [r for r in self.requests if r['op'] == op]

    def wait_for(self, pred, timeout=2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return True
            time.sleep(0.01)
        return pred()

    def close(self):
        self._stop = True
        for c in self._conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(2)
        self.sock.close()
        if self.errors:
            raise self.errors[0]


class FakeCase(unittest.TestCase):
    def fake(self, handler=None, **kw):
        s = FakeServer(handler, **kw)
        self.addCleanup(s.close)
        return s

    def client(self, url, **kw):
        c = Client(url, **kw)
        self.addCleanup(c.close)
        return c


# --- no server needed -------------------------------------------------------


class TestAddress(unittest.TestCase):
    def test_forms(self):
        self.assertEqual(parse_address('tcp://example.org:7070'), ('tcp', 'example.org', 7070))
        self.assertEqual(parse_address('localhost:81'), ('tcp', 'localhost', 81))
        self.assertEqual(parse_address('[::1]:7070'), ('tcp', '::1', 7070))
        self.assertEqual(parse_address('tcp://[::1]:7070'), ('tcp', '::1', 7070))
        self.assertEqual(parse_address('7071'), ('tcp', '127.0.0.1', 7071))
        self.assertEqual(parse_address(' 7071 '), ('tcp', '127.0.0.1', 7071))
        self.assertEqual(parse_address('unix:/tmp/s.sock'), ('unix', '/tmp/s.sock'))
        self.assertEqual(parse_address('unix:///tmp/s.sock'), ('unix', '/tmp/s.sock'))
        self.assertEqual(parse_address('unix:rel.sock'), ('unix', 'rel.sock'))

    def test_bad(self):
        for bad in ['', 'unix:', 'host', 'host:', ':80', 'a:b:80', 'host:99999', 'http://x:1', '::1:80']:
            with self.assertRaises(CacheservError, msg=bad) as cm:
                parse_address(bad)
            self.assertEqual(cm.exception.code, 'EBADREQ')

    def test_default_from_environment(self):
        old = os.environ.get('CACHESERV_SERVER')
        try:
            os.environ['CACHESERV_SERVER'] = 'unix:/x.sock'
            self.assertEqual(Client().address, 'unix:/x.sock')
            del os.environ['CACHESERV_SERVER']
            self.assertEqual(Client().address, 'tcp://127.0.0.1:7070')
        finally:
            if old is not None:
                os.environ['CACHESERV_SERVER'] = old

    def test_token_is_kept(self):
        self.assertEqual(Client('1', token='s3cret').token, 's3cret')

    def test_error_type(self):
        e = CacheservError('ENOENT', 'no such file', 'a/b')
        self.assertIsInstance(e, Exception)
        self.assertEqual((e.code, e.message, e.path), ('ENOENT', 'no such file', 'a/b'))
        self.assertIn('ENOENT', str(e))
        e2 = pickle.loads(pickle.dumps(e))
        self.assertEqual((e2.code, e2.message, e2.path), ('ENOENT', 'no such file', 'a/b'))


class TestReceiveScenarios(unittest.TestCase):
    """The receive window against the shared scenarios of spec/fixtures/wire/receive.json
    (PROTOCOL.md, the reverse path), which the Node receiver runs too."""

    TYPES = {'START': cc.START, 'DATA': cc.DATA, 'END': cc.END, 'ERROR': cc.ERROR, 'RESYNC': cc.RESYNC}
    NAMES = {cc._DELIVER: 'deliver', cc._DROP: 'drop', cc._RESYNCED: 'resynced', cc._UNREADABLE: 'unreadable-error'}

    def test_every_scenario(self):
        scenarios = wire('receive.json')['scenarios']
        self.assertGreater(len(scenarios), 10)
        for sc in scenarios:
            with self.subTest(sc['name']):
                req = cc._Request(1, 'read', True)
                for i, step in enumerate(sc['steps']):
                    if step.get('lost'):
                        got = {'nack': req.lost()}
                    else:
                        f = step['frame']
                        ftype = self.TYPES[f['type']]
                        payload = b'{}'
                        if f['type'] == 'DATA':
                            payload = b'a' * f.get('length', 0)
                        elif f['type'] == 'RESYNC':
                            payload = json.dumps({'resync': f['resync'], 'seq': f['seq'], 'offset': 0, 'pageSize': 1024}).encode()
                        v = req.accept(ftype, f['seq'], f.get('epoch', 0), f.get('intact', True), memoryview(payload))
                        if v == cc._LOST:
                            got = {'nack': req.lost()}  # as Client._nack does
                        else:
                            got = self.NAMES[v]
                            if v == cc._DELIVER and ftype == cc.DATA:
                                req.offset += len(payload)  # as Client._on_read_frame does
                    self.assertEqual(got, step['verdict'], 'step %d' % (i + 1))
                self.assertEqual({'seq': req.seq, 'offset': req.offset, 'nacks': req.nacks, 'awaiting': req.awaiting}, sc['end'])


class TestWireExchanges(FakeCase):
    """The client against the shared exchanges of spec/fixtures/wire/exchanges.json, which the
    Node client's specs run too: the same frames, damaged the same way, must end the read the
    same way, with the same request lines (NACKs, cancels) sent."""

    TYPES = {'START': cc.START, 'DATA': cc.DATA, 'END': cc.END, 'ERROR': cc.ERROR, 'RESYNC': cc.RESYNC}

    def frame_bytes(self, f, rid):
        if 'raw' in f:
            return bytes.fromhex(f['raw'])
        payload = f['text'].encode() if 'text' in f else json.dumps(f.get('json', {}), separators=(',', ':')).encode()
        b = bytearray(frame(self.TYPES[f['type']], rid, f['seq'], payload, epoch=f.get('epoch', 0)))
        if f.get('damage') == 'payload':
            b[-1] ^= 0x10
        elif f.get('damage') == 'header':
            b[11] ^= 0x01
        return bytes(b)

    def test_every_exchange(self):
        doc = wire('exchanges.json')
        self.assertGreater(len(doc['exchanges']), 5)
        for ex in doc['exchanges']:
            with self.subTest(ex['name']):
                def handler(s, conn, req, ex=ex):
                    answers = ex['answers'].get(req['op'], [])
                    nth = len(s.ops(req['op'])) - 1  # this line is recorded already
                    if nth < len(answers):
                        conn.sendall(b''.join(self.frame_bytes(f, req['id']) for f in answers[nth]))
                s = self.fake(handler, hello=doc['hello'])
                c = self.client(s.url, progress_timeout=2.0, retry_delays=())
                try:
                    outcome = {'bytes': c.read('hello.txt').decode()}
                except CacheservError as e:
                    outcome = {'error': e.code}
                self.assertEqual(outcome, ex['expect'])
                self.assertTrue(s.wait_for(lambda: len(s.requests) >= len(ex['sent'])), s.requests)
                time.sleep(0.05)
                self.assertEqual(len(s.requests), len(ex['sent']), s.requests)
                rid = s.requests[0]['id']
                for i, want in enumerate(ex['sent']):
                    got = s.requests[i]
                    self.assertEqual(got['id'], rid)
                    self.assertEqual({k: got.get(k) for k in want}, want, 'line %d: %r' % (i + 1, got))


class TestProtocolExamples(FakeCase):
    """The hex examples of PROTOCOL.md, byte for byte."""

    def test_every_wire_frame_decodes_to_its_fields_and_encodes_back(self):
        for fx in wire('frames.json')['frames']:
            raw = bytes.fromhex(fx['hex'])
            mv = memoryview(raw)
            h = cc._check_header(raw, mv, 0)
            self.assertIsNotNone(h, fx['name'])
            magic, ver, ftype, rid, seq, length, ck, epoch, _, _ = h
            payload = fx['payload'].encode('utf-8')
            self.assertEqual((ftype, rid, seq, epoch, ck, length), (fx['type'], fx['id'], fx['seq'], fx['epoch'], fx['checksum'], len(payload)), fx['name'])
            body = cc.HEADER_SIZE + cc._DIGEST_SIZE[ck]
            self.assertEqual(raw[body:], payload, fx['name'])
            self.assertTrue(cc._verify(ck, raw, cc.HEADER_SIZE, mv[body:]), fx['name'])
            self.assertEqual(frame(ftype, rid, seq, payload, ck=ck, epoch=epoch), raw, fx['name'])

    def test_encoder_matches_the_examples(self):
        self.assertEqual(frame(2, 1, 0, b'{"size":6,"offset":0,"length":6,"mtimeMs":0}'), EX_START)
        self.assertEqual(frame(3, 1, 1, b'hello\n'), EX_DATA)
        self.assertEqual(frame(4, 1, 2, b'{"length":6}'), EX_END)
        self.assertEqual(frame(3, 1, 1, b'hello\n', ck=2), EX_DATA_MD5)
        self.assertEqual(frame(6, 2, 0, b'{"code":"ENOENT","message":"no such file or directory: nope"}'), EX_ENOENT)
        self.assertEqual(frame(7, 1, 1, b'{"resync":1,"seq":1,"offset":0,"pageSize":131072}', epoch=1), EX_RESYNC)
        self.assertEqual(frame(3, 1, 1, b'hello\n', epoch=1), EX_DATA_EPOCH1)

    def test_reads_the_example_frames(self):
        def handler(s, conn, req):
            if req['op'] == 'read' and req['path'] == 'hello.txt':
                conn.sendall(EX_START + EX_DATA + EX_END)
            elif req['op'] == 'read':
                conn.sendall(EX_ENOENT)
        s = self.fake(handler)
        c = self.client(s.url)
        self.assertEqual(c.hello['checksum'], 'crc32')
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.requests[0], {'path': 'hello.txt', 'offset': 0, 'id': 1, 'op': 'read'})
        with self.assertRaises(CacheservError) as cm:
            c.read('nope')
        self.assertEqual(cm.exception.code, 'ENOENT')
        self.assertEqual(cm.exception.message, 'no such file or directory: nope')
        self.assertEqual(cm.exception.path, 'nope')

    def test_reads_the_streamed_tree_example(self):
        # PROTOCOL.md, "Streamed tree": a JSON object a line, cut anywhere (inside a line, inside a
        # multi-byte name) and parsed a batch of whole lines at a time.
        from cacheserv_client import _TreeLines
        lines = b'{"path":"train/cat/0001.jpg","size":120007}\n{"path":"train/cat/0002.jpg","size":98311}\n'
        lines += '{"path":"ünï/名前.jpg","size":9}\n'.encode('utf-8')
        for cut in (1, 5, 44, len(lines)):
            tree = _TreeLines()
            got = []
            for at in range(0, len(lines), cut):
                tree.feed(lines[at:at + cut])
                while tree.ready:
                    got.extend(tree.pop())
            self.assertTrue(tree.at_boundary())
            self.assertEqual(got, [{'path': 'train/cat/0001.jpg', 'size': 120007}, {'path': 'train/cat/0002.jpg', 'size': 98311},
                                   {'path': 'ünï/名前.jpg', 'size': 9}])
        tree = _TreeLines()
        tree.feed(b'{"path":"a","size":1}\n{"path":')
        self.assertFalse(tree.at_boundary())  # a stream that ends here ended inside a line
        with self.assertRaises(CacheservError) as cm:
            _TreeLines().feed(b'{"path": nope}\n')
        self.assertEqual(cm.exception.code, 'EPROTO')

    def test_reads_the_readv_entry_example(self):
        # PROTOCOL.md, "readv": the third item, 20,000 bytes of a file of 120,007 bytes.
        header = hexbytes('02000000 00000000 00000000704cfd40 000080896aae7942 000000000088d340')
        from cacheserv_client import _Entries
        first = [hexbytes('00000000 00000000 0000000000000840 0000000000000000 0000000000000840'), b'abc']
        second = [hexbytes('01000000 01000000 0000000000000000 0000000000000000 0000000000000000')]
        body = os.urandom(20000)
        stream = b''.join(first + second + [header, body])
        for cut in (1, 7, 32, 1000, len(stream)):
            entries = _Entries()
            for at in range(0, len(stream), cut):
                entries.feed(stream[at:at + cut])
            got = [entries.pop() for _ in range(3)]
            self.assertFalse(entries.ready)
            self.assertTrue(entries.at_boundary())
            self.assertEqual(got[0], (0, 0, 3.0, 0.0, b'abc'))
            self.assertEqual(got[1], (1, 1, 0.0, 0.0, b''))
            self.assertEqual(got[2], (2, 0, 120007.0, 1764806400000.0, body))

    def test_reads_the_md5_example(self):
        def handler(s, conn, req):
            conn.sendall(frame(2, 1, 0, b'{"size":6,"offset":0,"length":6,"mtimeMs":0}', ck=2) + EX_DATA_MD5 + frame(4, 1, 2, b'{"length":6}', ck=2))
        s = self.fake(handler, hello=dict(HELLO_CRC32, checksum='md5'), ck=2)
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(c.nacks, 0)

    def test_the_resend_example(self):
        def handler(s, conn, req):
            if req['op'] == 'read':
                conn.sendall(EX_START + damaged_payload(EX_DATA) + EX_END)
            elif req['op'] == 'nack':
                conn.sendall(EX_RESYNC + EX_DATA_EPOCH1 + frame(4, 1, 2, b'{"length":6}', epoch=1))
        s = self.fake(handler)
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.ops('nack'), [{'seq': 1, 'offset': 0, 'resync': 1, 'id': 1, 'op': 'nack'}])
        self.assertEqual(c.nacks, 1)


def _hello_txt(s, conn, req):
    """A scripted server's answer to any read: hello.txt."""
    rid = req['id']
    conn.sendall(start_frame(rid, 6) + frame(3, rid, 1, b'hello\n') + frame(4, rid, 2, {'length': 6}))


def start_frame(rid, size, offset=0, length=None, epoch=0):
    length = size - offset if length is None else length
    return frame(2, rid, 0, {'size': size, 'offset': offset, 'length': length, 'mtimeMs': 1}, epoch=epoch)


def resync_frame(req, page=1024):
    return frame(7, req['id'], req['seq'], {'resync': req['resync'], 'seq': req['seq'], 'offset': req['offset'], 'pageSize': page},
                 epoch=req['resync'] & 0xFF)


def pages_from(rid, data, seq, offset, page, epoch=0):
    """DATA frames of data[offset:] from frame seq on, then END."""
    out = []
    while offset < len(data):
        out.append(frame(3, rid, seq, data[offset:offset + page], epoch=epoch))
        seq += 1
        offset += page
    out.append(frame(4, rid, seq, {'length': len(data)}, epoch=epoch))
    return b''.join(out)


class ResendingServer(object):
    """A correct sender of one file: every NACK is answered by RESYNC and the resend.
    ``damage(frames)`` may change the first attempt's frames (a list of bytes)."""

    def __init__(self, data, page=4096, damage=None, resync_lost=False):
        self.data = data
        self.page = page
        self.damage = damage
        self.resync_lost = resync_lost

    def __call__(self, s, conn, req):
        rid = req['id']
        if req['op'] == 'read':
            frames = [start_frame(rid, len(self.data))]
            seq, off = 1, 0
            while off < len(self.data):
                frames.append(frame(3, rid, seq, self.data[off:off + self.page]))
                seq += 1
                off += self.page
            frames.append(frame(4, rid, seq, {'length': len(self.data)}))
            if self.damage:
                frames = self.damage(frames)
            conn.sendall(b''.join(frames))
        elif req['op'] == 'nack':
            epoch = req['resync'] & 0xFF
            out = b'' if self.resync_lost else resync_frame(req, self.page)
            if req['seq'] == 0:
                out += start_frame(rid, len(self.data), epoch=epoch)
                out += pages_from(rid, self.data, 1, 0, self.page, epoch)
            else:
                out += pages_from(rid, self.data, req['seq'], req['offset'], self.page, epoch)
            conn.sendall(out)


class TestReceiver(FakeCase):
    """The receiving side of the NACK path against scripted damage."""

    data = bytes(range(256)) * 64  # 16 KiB, four pages of 4 KiB

    def test_bad_payload_is_nacked_and_resent(self):
        def damage(frames):
            frames[2] = damaged_payload(frames[2])  # the second DATA
            return frames
        s = self.fake(ResendingServer(self.data, damage=damage))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual([(n['seq'], n['offset'], n['resync']) for n in s.ops('nack')], [(2, 4096, 1)])

    def test_a_gap_is_nacked(self):
        s = self.fake(ResendingServer(self.data, damage=lambda fr: fr[:2] + fr[3:]))  # DATA seq 2 lost
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual([(n['seq'], n['offset']) for n in s.ops('nack')], [(2, 4096)])

    def test_a_duplicate_is_dropped_without_nack(self):
        s = self.fake(ResendingServer(self.data, damage=lambda fr: fr[:3] + fr[2:]))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.nacks, 0)

    def test_a_lost_resync_is_replaced_by_the_first_frame_of_its_epoch(self):
        def damage(frames):
            frames[1] = damaged_payload(frames[1])
            return frames
        s = self.fake(ResendingServer(self.data, damage=damage, resync_lost=True))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.nacks, 1)

    def test_a_damaged_start_is_asked_for_again(self):
        def damage(frames):
            frames[0] = damaged_payload(frames[0])
            return frames
        s = self.fake(ResendingServer(self.data, damage=damage))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual([(n['seq'], n['offset']) for n in s.ops('nack')], [(0, 0)])

    def test_a_bad_header_makes_it_hunt(self):
        def damage(frames):
            bad = bytearray(frames[2])
            bad[13] ^= 0x01  # the length: the header CRC catches it
            frames[2] = bytes(bad)
            return frames
        s = self.fake(ResendingServer(self.data, damage=damage))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.lost_sync, 1)
        self.assertEqual([(n['seq'], n['offset']) for n in s.ops('nack')], [(2, 4096)])

    def test_garbage_between_frames(self):
        junk = bytes([0xC5, 0x50, 0x01, 0x03]) + os.urandom(100) + b'\xc5'
        s = self.fake(ResendingServer(self.data, damage=lambda fr: fr[:2] + [junk] + fr[2:]))
        c = self.client(s.url)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.lost_sync, 1)
        self.assertEqual(c.nacks, 0)

    def test_a_lost_last_frame_is_caught_by_the_progress_timeout(self):
        s = self.fake(ResendingServer(self.data, damage=lambda fr: fr[:-1]))  # no END
        c = self.client(s.url, progress_timeout=0.1)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.timeouts, 1)
        self.assertEqual([(n['seq'], n['offset']) for n in s.ops('nack')], [(5, len(self.data))])

    def test_a_half_frame_is_dropped_at_the_progress_timeout(self):
        s = self.fake(ResendingServer(self.data, damage=lambda fr: fr[:-2] + [fr[-2][:100]]))
        c = self.client(s.url, progress_timeout=0.1)
        self.assertEqual(c.read('f'), self.data)
        self.assertEqual(c.timeouts, 1)
        self.assertEqual([(n['seq'], n['offset']) for n in s.ops('nack')], [(4, 3 * 4096)])

    def test_a_silent_server_times_out(self):
        def handler(s, conn, req):
            if req['op'] == 'read':
                conn.sendall(start_frame(req['id'], 100))
        s = self.fake(handler)
        c = self.client(s.url, progress_timeout=0.05)
        t0 = time.monotonic()
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'ETIMEDOUT')
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(c.timeouts, 5)
        self.assertEqual(c.nacks, 4)
        # every NACK after the first one restates the same position, with the next resync number
        self.assertEqual([(n['seq'], n['offset'], n['resync']) for n in s.ops('nack')], [(1, 0, 1), (1, 0, 2), (1, 0, 3), (1, 0, 4)])

    def test_gives_up_after_32_nacks_and_cancels(self):
        def handler(s, conn, req):
            if req['op'] == 'read':
                conn.sendall(start_frame(req['id'], 10) + damaged_payload(frame(3, req['id'], 1, b'0123456789')))
            elif req['op'] == 'nack':
                e = req['resync'] & 0xFF
                conn.sendall(resync_frame(req) + damaged_payload(frame(3, req['id'], 1, b'0123456789', epoch=e)))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'ECORRUPT')
        self.assertEqual(c.nacks, 32)
        self.assertTrue(s.wait_for(lambda: s.ops('cancel')), 'the request is cancelled on the server')
        self.assertEqual(s.ops('cancel')[0]['id'], 1)

    def test_an_error_that_overtakes_the_nack_fails_the_read_and_cancels_the_resend(self):
        # The server answers the NACK even though it ended the request first: a resend for nobody.
        def handler(s, conn, req):
            if req['op'] == 'read':
                rid = req['id']
                conn.sendall(start_frame(rid, 20) + frame(3, rid, 2, b'0123456789')  # seq 1 lost: a gap
                             + frame(6, rid, 3, {'code': 'EIO', 'message': 'disk went away'}))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'EIO')
        self.assertTrue(s.wait_for(lambda: s.ops('cancel')), 'the resend is cancelled on the server')
        self.assertEqual([(r['op'], r['id']) for r in s.requests], [('read', 1), ('nack', 1), ('cancel', 1)])

    def test_a_damaged_error_of_the_current_epoch_is_ecorrupt(self):
        def handler(s, conn, req):
            if req['op'] == 'read':
                conn.sendall(damaged_payload(frame(6, req['id'], 0, {'code': 'ENOENT', 'message': 'x'})))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'ECORRUPT')
        self.assertEqual(c.nacks, 0)

    def test_the_senders_give_up_arrives_in_the_nacks_epoch(self):
        def handler(s, conn, req):
            if req['op'] == 'read':
                conn.sendall(start_frame(req['id'], 10) + damaged_payload(frame(3, req['id'], 1, b'0123456789')))
            elif req['op'] == 'nack':
                conn.sendall(frame(6, req['id'], 0, {'code': 'ECORRUPT', 'message': 'gave up'}, epoch=req['resync'] & 0xFF))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual((cm.exception.code, cm.exception.message), ('ECORRUPT', 'gave up'))
        # It answers the NACK: nothing is left to cancel.
        time.sleep(0.1)
        self.assertEqual(s.ops('cancel'), [])

    def test_a_short_read_is_an_error(self):
        def handler(s, conn, req):
            rid = req['id']
            conn.sendall(start_frame(rid, 10) + frame(3, rid, 1, b'01234') + frame(4, rid, 2, {'length': 5}))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'EPROTO')
        self.assertTrue(s.wait_for(lambda: s.ops('cancel')) or True)

    def test_interleaved_requests_and_tiny_chunks(self):
        """Frames of several requests interleaved, written a few bytes at a time."""
        blobs = [os.urandom(n) for n in (0, 1, 5000, 70000)]

        def handler(s, conn, req):
            if req['op'] != 'read':
                return
            s.state.setdefault('reqs', []).append(req)
            if len(s.state['reqs']) < len(blobs):
                return
            per = []
            for r, blob in zip(s.state['reqs'], blobs):
                fr = [start_frame(r['id'], len(blob))]
                off, seq = 0, 1
                while off < len(blob):
                    fr.append(frame(3, r['id'], seq, blob[off:off + 1024]))
                    off += 1024
                    seq += 1
                fr.append(frame(4, r['id'], seq, {'length': len(blob)}))
                per.append(fr)
            stream = b''
            while any(per):
                for fr in per:
                    if fr:
                        stream += fr.pop(0)
            i = 0
            sizes = [1, 2, 3, 7, 24, 25, 1000, 4096]
            while i < len(stream):
                n = sizes[i % len(sizes)]
                conn.sendall(stream[i:i + n])
                i += n
        s = self.fake(handler)
        c = self.client(s.url)
        # Four reads in flight on the connection at once (read_many would send one readv).
        reqs = [c._read_request('b%d' % i, 0, None) for i in range(len(blobs))]
        for req, blob in zip(reqs, blobs):
            c._wait(req)
            self.assertEqual(req.take(), blob)

    def test_a_frame_larger_than_the_receive_buffer(self):
        blob = os.urandom(9 * MiB + 3)

        def handler(s, conn, req):
            rid = req['id']
            conn.sendall(start_frame(rid, len(blob)) + frame(3, rid, 1, blob[:6 * MiB]) + frame(3, rid, 2, blob[6 * MiB:]) + frame(4, rid, 3, {'length': len(blob)}))
        s = self.fake(handler, hello=dict(HELLO_CRC32, pageSize=8 * MiB))
        c = self.client(s.url)
        self.assertEqual(sha(c.read('big')), sha(blob))
        buf = bytearray(len(blob) + 10)
        self.assertEqual(c.read_into('big', buf), len(blob))
        self.assertEqual(sha(buf[:len(blob)]), sha(blob))

    def test_connection_level_error_fails_what_is_in_flight(self):
        def handler(s, conn, req):
            conn.sendall(frame(6, 0, 0, {'code': 'ETOOBIG', 'message': 'request line too long'}))
        s = self.fake(handler)
        c = self.client(s.url)
        with self.assertRaises(CacheservError) as cm:
            c.read('f')
        self.assertEqual(cm.exception.code, 'ETOOBIG')

    def test_reconnects_after_the_connection_is_lost(self):
        def handler(s, conn, req):
            if s.connections == 1:
                conn.shutdown(socket.SHUT_RDWR)
            else:
                rid = req['id']
                conn.sendall(start_frame(rid, 6) + frame(3, rid, 1, b'hello\n') + frame(4, rid, 2, {'length': 6}))
        s = self.fake(handler)
        c = self.client(s.url, retry_delays=())
        with self.assertRaises(CacheservError) as cm:
            c.read('hello.txt')
        self.assertEqual(cm.exception.code, 'ECLOSED')
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 2)

    def test_a_read_whose_connection_dies_is_sent_again_on_a_new_one(self):
        def handler(s, conn, req):
            if s.connections <= 2:
                conn.shutdown(socket.SHUT_RDWR)
            else:
                rid = req['id']
                conn.sendall(start_frame(rid, 6) + frame(3, rid, 1, b'hello\n') + frame(4, rid, 2, {'length': 6}))
        s = self.fake(handler)
        c = self.client(s.url, retry_delays=(0.01, 0.01, 0.01))
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 3)
        self.assertEqual(len(s.ops('read')), 3)

    def test_warm_evict_and_writes_are_not_sent_again(self):
        s = self.fake(lambda s, conn, req: conn.shutdown(socket.SHUT_RDWR))
        c = self.client(s.url, retry_delays=(0.01, 0.01))
        for op in ('warm', 'evict'):
            with self.assertRaises(CacheservError) as cm:
                c.request(op)
            self.assertEqual(cm.exception.code, 'ECLOSED')
            self.assertTrue(s.wait_for(lambda: len(s.ops(op)) == 1))
            time.sleep(0.05)
            self.assertEqual(len(s.ops(op)), 1, op)

    def test_a_wrong_token_says_how_to_pass_one_in_python(self):
        def handler(s, conn, req):
            conn.sendall(frame(6, 0, 0, {'code': 'EAUTH', 'message': 'this server needs a token: pass --token or set CACHESERV_TOKEN'}))
            conn.shutdown(socket.SHUT_RDWR)
        s = self.fake(handler, hello=dict(HELLO_CRC32, auth=True))
        c = self.client(s.url, token='wrong')
        with self.assertRaises(CacheservError) as cm:
            c.stat('x')
        self.assertEqual(cm.exception.code, 'EAUTH')
        self.assertIn('pass token= or set CACHESERV_TOKEN', str(cm.exception))
        self.assertNotIn('--token', str(cm.exception))

    def test_a_close_between_calls_is_noticed_before_the_next_request(self):
        def handler(s, conn, req):
            rid = req['id']
            conn.sendall(start_frame(rid, 6) + frame(3, rid, 1, b'hello\n') + frame(4, rid, 2, {'length': 6}))
            if s.connections == 1:
                conn.shutdown(socket.SHUT_RDWR)  # the answer, then the close: as an idle timeout would
        s = self.fake(handler)
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertTrue(s.wait_for(lambda: s.connections == 1 and len(s.requests) == 1))
        time.sleep(0.05)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 2)
        self.assertEqual(len(s.requests), 2, 'each request sent once')

    def test_a_connection_near_the_announced_idle_timeout_is_replaced(self):
        # HELLO says 400 ms: after 300 ms quiet (the margin is a quarter) a request goes on a new connection.
        s = self.fake(_hello_txt, hello=dict(HELLO_CRC32, idleTimeout=400))
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 1)
        time.sleep(0.32)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 2)

    def test_a_connection_that_sent_nothing_is_replaced_before_the_first_request_deadline(self):
        # HELLO says the first request must come within 400 ms: a client that connected ahead
        # and waited 320 ms sends on a new connection; once a request went out, only the idle
        # timeout (none here) counts.
        s = self.fake(_hello_txt, hello=dict(HELLO_CRC32, requestTimeout=400))
        c = self.client(s.url)
        c.connect()
        time.sleep(0.32)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 2)
        time.sleep(0.32)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 2)

    def test_an_ebadreq_on_id_0_leaves_the_requests_in_flight_alone(self):
        # The server refuses a line naming a running request on id 0 (the request runs on).
        def handler(s, conn, req):
            rid = req['id']
            refusal = frame(6, 0, 0, {'code': 'EBADREQ', 'message': 'request %d: id already in flight' % rid})
            conn.sendall(start_frame(rid, 6) + refusal + frame(3, rid, 1, b'hello\n') + frame(4, rid, 2, {'length': 6}))
        s = self.fake(handler)
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertEqual(s.connections, 1)

    def test_a_server_that_is_gone_is_eclosed_after_the_retry_delays(self):
        s = FakeServer(lambda s, conn, req: conn.sendall(EX_START + EX_DATA + EX_END))
        c = self.client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        s.close()
        time.sleep(0.05)
        t0 = time.monotonic()
        with self.assertRaises(CacheservError) as cm:
            c.stat('hello.txt')
        took = time.monotonic() - t0
        self.assertEqual(cm.exception.code, 'ECLOSED')
        self.assertEqual(cm.exception.__cause__.code, 'ECONNECT')
        self.assertGreaterEqual(took, sum(cc.RETRY_DELAYS) - 0.05)
        self.assertLess(took, sum(cc.RETRY_DELAYS) + 2)

    def test_with_retrying_off_a_server_that_is_gone_is_eclosed_at_once(self):
        s = FakeServer(lambda s, conn, req: conn.sendall(EX_START + EX_DATA + EX_END))
        c = self.client(s.url, retry_delays=())
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        s.close()
        time.sleep(0.05)
        t0 = time.monotonic()
        for _ in range(2):
            with self.assertRaises(CacheservError) as cm:
                c.read('hello.txt')
            self.assertEqual(cm.exception.code, 'ECLOSED')
            self.assertIn('a new one failed', cm.exception.message)
        self.assertLess(time.monotonic() - t0, 2)

    def test_close_is_final(self):
        s = self.fake(lambda s, conn, req: conn.sendall(EX_START + EX_DATA + EX_END))
        c = Client(s.url)
        self.assertEqual(c.read('hello.txt'), b'hello\n')
        c.close()
        with self.assertRaises(CacheservError) as cm:
            c.read('hello.txt')
        self.assertEqual(cm.exception.message, 'client closed')
        self.assertEqual(s.connections, 1)

    def test_closed_client(self):
        s = self.fake(lambda s, conn, req: conn.sendall(EX_START + EX_DATA + EX_END))
        with Client(s.url) as c:
            self.assertEqual(c.read('hello.txt'), b'hello\n')
        self.assertTrue(c.closed)
        with self.assertRaises(CacheservError) as cm:
            c.read('hello.txt')
        self.assertEqual(cm.exception.code, 'ECLOSED')

    def test_progress_frames(self):
        def handler(s, conn, req):
            rid = req['id']
            if req['op'] == 'warm':
                conn.sendall(frame(8, rid, 0, {'files': 1, 'bytes': 10, 'totalFiles': 3, 'totalBytes': 30, 'full': False})
                             + frame(8, rid, 1, {'files': 2, 'bytes': 20, 'totalFiles': 3, 'totalBytes': 30, 'full': False})
                             + frame(5, rid, 2, {'files': 3, 'bytes': 30, 'totalFiles': 3, 'totalBytes': 30, 'full': False}))
        s = self.fake(handler)
        c = self.client(s.url)
        seen = []
        result = c.warm('d', progress=seen.append)
        self.assertEqual(result['files'], 3)
        self.assertEqual([p['files'] for p in seen], [1, 2])
        self.assertEqual(s.requests[-1], {'path': 'd', 'id': 1, 'op': 'warm'})

        def boom(p):
            raise KeyError('stop')
        with self.assertRaises(KeyError):
            c.warm('d', progress=boom)
        self.assertTrue(s.wait_for(lambda: s.ops('cancel')))
        self.assertEqual(c.warm('d')['bytes'], 30)  # the connection goes on

    def test_evict_without_path_sends_none(self):
        def handler(s, conn, req):
            conn.sendall(frame(5, req['id'], 0, {'files': 0, 'blocks': 0, 'bytes': 0}))
        s = self.fake(handler)
        c = self.client(s.url)
        c.evict()
        c.evict('x')
        self.assertEqual(s.requests, [{'id': 1, 'op': 'evict'}, {'path': 'x', 'id': 2, 'op': 'evict'}])


class TestConnect(FakeCase):
    def test_nothing_listening_is_econnect(self):
        sock = socket.socket()
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
        sock.close()
        c = Client('127.0.0.1:%d' % port)
        with self.assertRaises(CacheservError) as cm:
            c.stat('x')
        self.assertEqual(cm.exception.code, 'ECONNECT')
        with self.assertRaises(CacheservError) as cm:
            Client('unix:/nonexistent/cacheserv.sock').connect()
        self.assertEqual(cm.exception.code, 'ECONNECT')

    def test_not_a_cacheserv_server_is_eproto(self):
        s = self.fake(greeting=b'HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
        with self.assertRaises(CacheservError) as cm:
            Client(s.url).connect()
        self.assertEqual(cm.exception.code, 'EPROTO')

    def test_another_protocol_version_is_eproto(self):
        s = self.fake(hello=dict(HELLO_CRC32, protocol=2))
        with self.assertRaises(CacheservError) as cm:
            Client(s.url).connect()
        self.assertEqual(cm.exception.code, 'EPROTO')

    def test_a_silent_peer_is_econnect_after_the_timeout(self):
        s = self.fake(greeting=b'')
        t0 = time.monotonic()
        with self.assertRaises(CacheservError) as cm:
            Client(s.url, timeout=0.2).connect()
        self.assertEqual(cm.exception.code, 'ECONNECT')
        self.assertLess(time.monotonic() - t0, 2)

    def test_hello_in_pieces(self):
        hello = frame(1, 0, 0, HELLO_CRC32)
        lsock = socket.socket()
        lsock.bind(('127.0.0.1', 0))
        lsock.listen(1)
        self.addCleanup(lsock.close)

        def serve():
            conn, _ = lsock.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(0, len(hello), 5):
                    conn.sendall(hello[i:i + 5])
                    time.sleep(0.002)
                conn.makefile('rb').readline()
        th = threading.Thread(target=serve, daemon=True)
        th.start()
        c = Client('127.0.0.1:%d' % lsock.getsockname()[1])
        self.assertEqual(c.hello['server'], 'fake/0')
        c.close()
        th.join(2)


# --- against real servers ---------------------------------------------------


@needs('CACHESERV_TEST_SERVER', 'CACHESERV_TEST_ROOT', 'CACHESERV_TEST_FILES')
class TestReads(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Client(SERVER)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_hello(self):
        h = self.c.hello
        self.assertEqual(h['protocol'], 1)
        self.assertEqual(h['checksum'], 'crc32')
        self.assertEqual(h['pageSize'], PAGE)

    def test_every_fixture_byte_exact(self):
        self.assertTrue(FILES)
        for name, size in sorted(FILES.items()):
            data = self.c.read(name)
            self.assertEqual(len(data), size, name)
            self.assertEqual(sha(data), disk_sha(name), name)
            self.assertIsInstance(data, bytes)

    def test_path_like_names(self):
        import pathlib
        self.assertEqual(self.c.read(pathlib.PurePosixPath('small') / '00001.bin'), disk('small/00001.bin'))
        self.assertEqual(self.c.read(b'one.bin'), disk('one.bin'))
        with self.c.open(pathlib.PurePosixPath('one.bin')) as f:
            self.assertEqual(f.name, 'one.bin')
            self.assertEqual(f.read(), disk('one.bin'))

    def test_twice_in_a_row_and_larger_than_the_cache(self):
        for _ in range(2):
            self.assertEqual(sha(self.c.read('big.bin')), disk_sha('big.bin'))

    def test_read_into(self):
        size = FILES['random3m.bin']
        buf = bytearray(size + 100)
        self.assertEqual(self.c.read_into('random3m.bin', buf), size)
        self.assertEqual(sha(buf[:size]), disk_sha('random3m.bin'))
        small = bytearray(1000)
        self.assertEqual(self.c.read_into('random3m.bin', small, offset=PAGE - 10), 1000)
        self.assertEqual(sha(small), disk_sha('random3m.bin', PAGE - 10, 1000))
        mv = memoryview(bytearray(10))
        self.assertEqual(self.c.read_into('empty.bin', mv), 0)

    def test_ranges(self):
        size = FILES['ranges.bin']
        cases = [
            (0, 0, 0, 0), (0, 1, 0, 1), (size - 1, 1, size - 1, size),
            (MiB - 5, 10, MiB - 5, MiB + 5), (MiB - 100, 100, MiB - 100, MiB),
            (MiB, PAGE + 3, MiB, MiB + PAGE + 3), (size - 10, 1000, size - 10, size),
            (12345, None, 12345, size), (size, None, size, size), (PAGE - 1, 2, PAGE - 1, PAGE + 1),
        ]
        whole = disk('ranges.bin')
        for offset, length, start, end in cases:
            got = self.c.read('ranges.bin', offset=offset, length=length)
            self.assertEqual(sha(got), sha(whole[start:end]), (offset, length))

    def test_errors(self):
        def code(fn, *args):
            with self.assertRaises(CacheservError) as cm:
                fn(*args)
            return cm.exception
        e = code(self.c.read, 'missing.bin')
        self.assertEqual(e.code, 'ENOENT')
        self.assertEqual(e.path, 'missing.bin')
        self.assertEqual(code(self.c.read, '../x').code, 'EACCES')
        self.assertEqual(code(self.c.read, 'small/../../x').code, 'EACCES')
        self.assertEqual(code(self.c.read, '/etc/passwd').code, 'EACCES')
        self.assertEqual(code(self.c.read, 'a\\b').code, 'EACCES')
        self.assertEqual(code(self.c.read, 'small').code, 'EISDIR')
        self.assertEqual(code(self.c.read, 'one.bin', 2).code, 'ERANGE')
        self.assertEqual(code(self.c.stat, 'missing.bin').code, 'ENOENT')
        self.assertEqual(code(self.c.ls, 'one.bin').code, 'ENOTDIR')
        self.assertEqual(code(self.c.ls, '../').code, 'EACCES')
        self.assertEqual(code(self.c.open, 'missing.bin').code, 'ENOENT')
        self.assertEqual(code(self.c.request, 'frobnicate').code, 'EBADREQ')
        # the connection is fine after all that
        self.assertEqual(self.c.read('one.bin'), disk('one.bin'))

    def test_tree_lists_every_file_with_its_size_in_walk_order_a_page_at_a_time(self):
        whole = list(self.c.tree())
        self.assertEqual(whole, _local_tree_of(''))
        for page_size in (1, 3, 1000):
            self.assertEqual(list(self.c.tree(page_size=page_size)), whole)
        self.assertEqual(list(self.c.tree('small')), _local_tree_of('small'))
        self.assertEqual([f['path'] for f in self.c.tree(suffix='.bin', page_size=2)], [f['path'] for f in whole if f['path'].endswith('.bin')])
        self.assertEqual(list(self.c.tree('one.bin')), [{'path': 'one.bin', 'size': 1}])
        with self.assertRaises(CacheservError) as cm:
            list(self.c.tree('no/such/dir'))
        self.assertEqual(cm.exception.code, 'ENOENT')

    def test_ls_and_stat(self):
        root = self.c.ls()
        names = [e['name'] for e in root]
        self.assertEqual(names, sorted(names))
        self.assertIn({'name': 'small', 'type': 'dir'}, root)
        self.assertIn({'name': 'one.bin', 'type': 'file'}, root)
        self.assertIn({'name': 'one.bin', 'type': 'file', 'size': 1}, self.c.ls(long=True))
        self.assertEqual(self.c.ls(''), root)
        small = self.c.ls('small')
        self.assertEqual(sorted(e['name'] for e in small), sorted(os.listdir(os.path.join(ROOT, 'small'))))
        st = self.c.stat('random3m.bin')
        self.assertEqual(st['type'], 'file')
        self.assertEqual(st['size'], FILES['random3m.bin'])
        self.assertEqual(st['path'], 'random3m.bin')
        self.assertAlmostEqual(st['mtimeMs'], os.stat(os.path.join(ROOT, 'random3m.bin')).st_mtime * 1000, delta=2)
        self.assertIsInstance(st['cached'], bool)
        self.assertIsInstance(st['cachedBytes'], int)
        self.assertIn('T', st['mtime'])
        self.assertEqual(self.c.stat('small')['type'], 'dir')

    def test_read_many(self):
        names = ['small/' + e['name'] for e in self.c.ls('small')]
        self.assertGreaterEqual(len(names), 200)
        seen = []
        for path, data in self.c.read_many(names, in_flight=16):
            seen.append(path)
            self.assertEqual(sha(data), disk_sha(path), path)
        self.assertEqual(seen, names)
        # from a generator, with big files in the mix, one at a time
        mixed = ['random3m.bin', 'empty.bin', 'page1.bin', 'one.bin']
        got = list(self.c.read_many((p for p in mixed), in_flight=1))
        self.assertEqual([p for p, _ in got], mixed)
        for p, d in got:
            self.assertEqual(sha(d), disk_sha(p))
        self.assertEqual(list(self.c.read_many([])), [])

    def test_read_many_ranges(self):
        with open(os.path.join(ROOT, 'big.bin'), 'rb') as f:
            big = f.read()
        spans = [('big.bin', 0, 10), 'one.bin', ('big.bin', len(big) - 7, None), ('big.bin', 2 * MiB - 3, MiB + 9),
                 ('big.bin', 5, 0), ['odd.bin', 1, 2]]
        got = list(self.c.read_many(spans, in_flight=3))
        self.assertEqual([p for p, _ in got], spans)
        self.assertEqual(got[0][1], big[:10])
        self.assertEqual(sha(got[1][1]), disk_sha('one.bin'))
        self.assertEqual(got[2][1], big[-7:])
        self.assertEqual(got[3][1], big[2 * MiB - 3:3 * MiB + 6])
        self.assertEqual(got[4][1], b'')
        self.assertEqual(len(got[5][1]), 2)

    def test_read_many_stops_at_an_error_and_cancels_the_rest(self):
        names = ['small/' + e['name'] for e in self.c.ls('small')][:20]
        paths = names[:5] + ['missing.bin'] + names[5:] + ['big.bin', 'random3m.bin']
        got = []
        with self.assertRaises(CacheservError) as cm:
            for p, d in self.c.read_many(paths, in_flight=8):
                got.append(p)
        self.assertEqual(cm.exception.code, 'ENOENT')
        self.assertEqual(cm.exception.path, 'missing.bin')
        self.assertEqual(got, names[:5])
        # abandoned early, big reads in flight: their late frames are dropped, the connection goes on
        gen = self.c.read_many(['big.bin', 'random3m.bin', 'big.bin'], in_flight=3)
        p, d = next(gen)
        gen.close()
        self.assertEqual(sha(self.c.read('page.bin')), disk_sha('page.bin'))
        self.assertEqual(self.c._reqs, {})

    def test_read_many_over_the_socket_asks_in_batches(self):
        # readv: a few request lines for hundreds of files, entries in order, errors in their place.
        with Client(SERVER, short_circuit=False) as c:
            names = ['small/' + e['name'] for e in c.ls('small')]
            before = c.stats()['totalConnections']
            spans = names + ['empty.bin', ('big.bin', 3, 10), 'random3m.bin']
            got = list(c.read_many(spans, in_flight=4))
            self.assertEqual([p for p, _ in got], spans)
            for p, d in got[:len(names) + 1]:
                self.assertEqual(sha(d), disk_sha(p), p)
            self.assertEqual(got[-2][1], disk('big.bin')[3:13])
            self.assertEqual(sha(got[-1][1]), disk_sha('random3m.bin'))
            self.assertEqual(c.stats()['totalConnections'], before, 'one connection')
            with self.assertRaises(CacheservError) as cm:
                for p, d in c.read_many(names[:3] + ['small', names[3]]):
                    self.assertIn(p, names[:3])
            self.assertEqual((cm.exception.code, cm.exception.path), ('EISDIR', 'small'))
            self.assertEqual(c._reqs, {}, 'nothing left in flight')

    def test_address_forms(self):
        kind, host, port = parse_address(SERVER)
        for addr in ['%s:%d' % (host, port), str(port), 'tcp://%s:%d' % (host, port)]:
            with Client(addr) as c:
                self.assertEqual(c.read('one.bin'), disk('one.bin'), addr)
        with Client() as c:  # $CACHESERV_SERVER
            self.assertEqual(c.read('one.bin'), disk('one.bin'))

    def test_pickles_as_settings(self):
        c2 = pickle.loads(pickle.dumps(self.c))
        self.assertEqual(c2.address, self.c.address)
        self.assertIsNone(c2._sock)
        self.assertEqual(c2.read('one.bin'), disk('one.bin'))
        c2.close()

    def test_threads_share_a_client(self):
        names = ['small/' + e['name'] for e in self.c.ls('small')][:60]
        errors = []

        def work(part):
            try:
                for p in part:
                    if sha(self.c.read(p)) != disk_sha(p):
                        errors.append(p)
            except Exception as e:  # pragma: no cover
                errors.append(repr(e))
        threads = [threading.Thread(target=work, args=(names[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    @unittest.skipUnless(hasattr(os, 'fork'), 'no os.fork here')
    def test_fork_safe(self):
        c = Client(SERVER)
        self.addCleanup(c.close)
        self.assertEqual(c.read('one.bin'), disk('one.bin'))
        parent_sock = c._sock
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: uses the inherited Client
            status = 1
            try:
                os.close(r)
                ok = sha(c.read('random3m.bin')) == disk_sha('random3m.bin') and c._sock is not parent_sock
                os.write(w, b'ok' if ok else b'bad')
                status = 0
            except BaseException as e:
                os.write(w, repr(e).encode()[:200])
            finally:
                os._exit(status)
        os.close(w)
        with os.fdopen(r, 'rb') as f:
            said = f.read()
        _, status = os.waitpid(pid, 0)
        self.assertEqual(said, b'ok')
        self.assertEqual(status, 0)
        # the parent's connection is untouched
        self.assertIs(c._sock, parent_sock)
        self.assertEqual(sha(c.read('page1.bin')), disk_sha('page1.bin'))
        self.assertIs(c._sock, parent_sock)

    def test_dataset_example_in_worker_processes(self):
        from dataset import CacheservDataset
        ds = CacheservDataset.from_dir('small', SERVER, transform=lambda b: sha(b))
        self.assertGreaterEqual(len(ds), 200)
        expected = [disk_sha(p) for p in ds.files[:12]]
        self.assertEqual([ds[i] for i in range(12)], expected)
        methods = [m for m in ('fork', 'spawn') if m in multiprocessing.get_all_start_methods()]
        for method in methods:
            ctx = multiprocessing.get_context(method)
            with ctx.Pool(2) as pool:
                got = pool.map(_dataset_item, [(ds.files, i) for i in range(12)])
            self.assertEqual(got, expected, method)


def _has_torch():
    try:
        import torch.utils.data  # noqa: F401
    except ImportError:
        return False
    return True


@needs('CACHESERV_TEST_IDLE_SERVER', 'CACHESERV_TEST_IDLE_MS', 'CACHESERV_TEST_ROOT')
class TestReconnect(unittest.TestCase):
    """Servers with a short idle timeout: every pause here is longer than it."""

    def pause(self):
        time.sleep(IDLE_S * 2 + 0.1)

    def client(self, url, **kw):
        c = Client(url, **kw)
        self.addCleanup(c.close)
        return c

    def connections(self, c):
        return c.stats()['totalConnections']

    def test_read_stat_ls_after_an_idle_close(self):
        c = self.client(IDLE_SERVER)
        self.assertEqual(c.read('one.bin'), disk('one.bin'))
        before = self.connections(c)
        self.pause()
        self.assertEqual(sha(c.read('random3m.bin')), disk_sha('random3m.bin'))
        self.assertEqual(self.connections(c), before + 1)
        self.pause()
        self.assertEqual(c.stat('odd.bin')['size'], FILES['odd.bin'])
        self.pause()
        self.assertIn('one.bin', [e['name'] for e in c.ls()])
        self.pause()
        buf = bytearray(1000)
        self.assertEqual(c.read_into('ranges.bin', buf, offset=5), 1000)
        self.assertEqual(sha(buf), disk_sha('ranges.bin', 5, 1000))
        self.pause()
        self.assertEqual([sha(d) for _, d in c.read_many(['page.bin', 'one.bin', 'page1.bin'])],
                         [disk_sha('page.bin'), disk_sha('one.bin'), disk_sha('page1.bin')])
        self.assertEqual(self.connections(c), before + 5)

    def test_a_remote_file_reads_on_after_an_idle_close(self):
        c = self.client(IDLE_SERVER)
        with c.open('odd.bin', readahead=4096) as f:
            head = f.read(100)
            self.pause()
            f.seek(-17, io.SEEK_END)
            tail = f.read()
        whole = disk('odd.bin')
        self.assertEqual(head + tail, whole[:100] + whole[-17:])

    @needs('CACHESERV_TEST_IDLE_UNIX_SERVER')
    def test_over_a_unix_socket(self):
        c = self.client(IDLE_UNIX_SERVER)
        self.assertEqual(c.read('page1.bin'), disk('page1.bin'))
        before = self.connections(c)
        self.pause()
        self.assertEqual(c.read('page1.bin'), disk('page1.bin'))
        self.assertEqual(self.connections(c), before + 1)

    @needs('CACHESERV_TEST_IDLE_TOKEN_SERVER', 'CACHESERV_TEST_IDLE_TOKEN')
    def test_with_a_token(self):
        c = self.client(IDLE_TOKEN_SERVER, token=IDLE_TOKEN)
        self.assertEqual(c.read('one.bin'), disk('one.bin'))
        before = self.connections(c)
        self.pause()
        self.assertEqual(c.read('one.bin'), disk('one.bin'))
        self.assertEqual(self.connections(c), before + 1)

    def test_threads_sharing_a_client_share_the_new_connection(self):
        c = self.client(IDLE_SERVER)
        before = self.connections(c)
        self.pause()
        names = sorted(FILES)
        results, errors = {}, []

        def work(name):
            try:
                results[name] = sha(c.read(name))
            except Exception as e:
                errors.append(e)
        threads = [threading.Thread(target=work, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(results, {n: disk_sha(n) for n in names})
        self.assertEqual(self.connections(c), before + 1)

    def test_the_dataset_example_across_a_pause_between_epochs(self):
        from dataset import CacheservDataset
        ds = CacheservDataset.from_dir('small', IDLE_SERVER, transform=lambda b: sha(b))
        self.addCleanup(ds.client.close)
        n = 20
        expected = [disk_sha(p) for p in ds.files[:n]]
        for _ in range(3):  # epochs, each after a pause longer than the idle timeout
            self.assertEqual([ds[i] for i in range(n)], expected)
            self.pause()

    def test_the_dataset_example_in_persistent_worker_processes(self):
        # What a DataLoader with persistent_workers=True does: the same worker processes, epoch after epoch.
        from dataset import CacheservDataset
        ds = CacheservDataset.from_dir('small', IDLE_SERVER)
        expected = [disk_sha(p) for p in ds.files[:12]]
        for method in [m for m in ('fork', 'spawn') if m in multiprocessing.get_all_start_methods()]:
            ctx = multiprocessing.get_context(method)
            with ctx.Pool(2) as pool:
                for _ in range(2):
                    got = pool.map(_dataset_item, [(ds.files, i, IDLE_SERVER) for i in range(12)])
                    self.assertEqual(got, expected, method)
                    self.pause()

    @unittest.skipUnless(_has_torch(), 'torch is not installed')
    def test_the_dataset_example_with_a_dataloader(self):
        from torch.utils.data import DataLoader
        from dataset import CacheservDataset
        ds = CacheservDataset(['small/%05d.bin' % i for i in range(16)], IDLE_SERVER, transform=sha)
        expected = [disk_sha(p) for p in ds.files]
        for workers in (0, 2):
            loader = DataLoader(ds, batch_size=None, num_workers=workers, persistent_workers=workers > 0)
            for _ in range(2):
                self.assertEqual(list(loader), expected, workers)
                self.pause()


def _dataset_item(args):
    """A worker process's view of the dataset (module level, so spawn can import it)."""
    files, i, server = args if len(args) == 3 else args + (SERVER,)
    global _WORKER_DS
    ds = _WORKER_DS.get(server)
    if ds is None:
        from dataset import CacheservDataset
        ds = _WORKER_DS[server] = CacheservDataset(files, server)
    return sha(ds[i])


_WORKER_DS = {}



@needs('CACHESERV_TEST_SERVER', 'CACHESERV_TEST_ROOT')
class TestOpen(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Client(SERVER)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def write(self, rel, data):
        path = os.path.join(ROOT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            f.write(data)
        return data

    def test_seek_tell_read_at_the_edges(self):
        whole = disk('ranges.bin')
        with self.c.open('ranges.bin', readahead=64 * KiB) as f:
            self.assertIsInstance(f, io.RawIOBase)
            self.assertTrue(f.readable() and f.seekable() and not f.writable())
            self.assertEqual(f.size(), len(whole))
            self.assertEqual(f.name, 'ranges.bin')
            self.assertEqual(f.read(10), whole[:10])
            self.assertEqual(f.tell(), 10)
            self.assertEqual(f.read(0), b'')
            f.seek(PAGE - 3)
            self.assertEqual(f.read(6), whole[PAGE - 3:PAGE + 3])
            f.seek(-5, io.SEEK_END)
            self.assertEqual(f.read(100), whole[-5:])
            self.assertEqual(f.read(100), b'')
            self.assertEqual(f.seek(10, io.SEEK_END), len(whole) + 10)
            self.assertEqual(f.read(), b'')
            f.seek(MiB)
            f.seek(-1, io.SEEK_CUR)
            self.assertEqual(f.read(2), whole[MiB - 1:MiB + 1])
            with self.assertRaises(ValueError):
                f.seek(-1)
            b = bytearray(300 * KiB)  # larger than the read-ahead: straight into the buffer
            f.seek(7)
            self.assertEqual(f.readinto(b), len(b))
            self.assertEqual(bytes(b), whole[7:7 + len(b)])
            f.seek(len(whole) - 3)
            self.assertEqual(f.readinto(b), 3)
            self.assertEqual(bytes(b[:3]), whole[-3:])
            f.seek(12345)
            self.assertEqual(sha(f.read()), sha(whole[12345:]))
            # many small reads through the read-ahead buffer
            f.seek(0)
            parts = []
            while True:
                chunk = f.read(1000)
                if not chunk:
                    break
                parts.append(chunk)
            self.assertEqual(sha(b''.join(parts)), sha(whole))
        self.assertTrue(f.closed)
        with self.assertRaises(ValueError):
            f.read(1)

    def test_buffered_reader_and_readline(self):
        text = b''.join(b'line %d\n' % i for i in range(20000))
        self.write('lines.txt', text)
        with io.BufferedReader(self.c.open('lines.txt')) as f:
            self.assertEqual(f.readline(), b'line 0\n')
            self.assertEqual(sum(1 for _ in f), 19999)
        with self.c.open('lines.txt') as f:
            self.assertEqual(f.readline(), b'line 0\n')
            self.assertEqual(f.readlines()[-1], b'line 19999\n')
        with io.TextIOWrapper(io.BufferedReader(self.c.open('lines.txt')), encoding='ascii') as t:
            self.assertEqual(t.read().count('\n'), 20000)

    def test_empty_file(self):
        with self.c.open('empty.bin') as f:
            self.assertEqual(f.size(), 0)
            self.assertEqual(f.read(), b'')
            self.assertEqual(f.read(10), b'')

    def test_tarfile(self):
        members = {'a.txt': b'hello\n', 'empty': b'', 'dir/big.bin': os.urandom(MiB + 77), 'dir/sub/page.bin': os.urandom(PAGE)}
        for i in range(50):
            members['many/%03d' % i] = os.urandom(i * 37)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode='w') as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        self.write('test.tar', buf.getvalue())
        gz = io.BytesIO()
        with tarfile.open(fileobj=gz, mode='w:gz') as tar:
            for name, data in list(members.items())[:6]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        self.write('test.tar.gz', gz.getvalue())

        with self.c.open('test.tar') as f:  # random access: seeks to each member
            with tarfile.open(fileobj=f) as tar:
                names = tar.getnames()
                self.assertEqual(names, list(members))
                for name in reversed(names):
                    self.assertEqual(tar.extractfile(name).read(), members[name], name)
        with self.c.open('test.tar') as f:  # the streaming mode, as for a pipe
            with tarfile.open(fileobj=f, mode='r|') as tar:
                for m in tar:
                    self.assertEqual(tar.extractfile(m).read(), members[m.name], m.name)
        with self.c.open('test.tar.gz') as f:
            with tarfile.open(fileobj=f) as tar:
                for m in tar.getmembers():
                    self.assertEqual(tar.extractfile(m).read(), members[m.name])

    def test_numpy_load(self):
        try:
            import numpy as np
        except ImportError:
            self.skipTest('numpy is not installed')
        arr = np.arange(300000, dtype=np.float64).reshape(600, 500)
        b = io.BytesIO()
        np.save(b, arr)
        self.write('arr.npy', b.getvalue())
        with self.c.open('arr.npy') as f:
            self.assertTrue(np.array_equal(np.load(f), arr))
        out = np.empty(600 * 500, dtype=np.float64)
        with self.c.open('arr.npy') as f:
            header = f.read(128)
            self.assertTrue(header.startswith(b'\x93NUMPY'))
        self.c.read_into('arr.npy', out, offset=128)
        self.assertTrue(np.array_equal(out.reshape(600, 500), arr))

    def test_zipfile(self):
        import zipfile
        b = io.BytesIO()
        with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:
            z.writestr('x.txt', b'x' * 100000)
            z.writestr('y.bin', os.urandom(5000))
        self.write('test.zip', b.getvalue())
        with self.c.open('test.zip') as f, zipfile.ZipFile(f) as z:
            self.assertEqual(z.read('x.txt'), b'x' * 100000)
            self.assertEqual(len(z.read('y.bin')), 5000)

    def test_a_file_changed_after_open_is_echanged(self):
        self.write('changing.bin', os.urandom(100000))
        with self.c.open('changing.bin', readahead=4096) as f:
            self.assertEqual(len(f.read(10)), 10)
            time.sleep(0.02)
            self.write('changing.bin', os.urandom(200000))
            f.seek(50000)
            with self.assertRaises(CacheservError) as cm:
                f.read(10)
            self.assertEqual(cm.exception.code, 'ECHANGED')

    def test_open_errors(self):
        for path, code in [('missing.bin', 'ENOENT'), ('small', 'EISDIR'), ('../x', 'EACCES')]:
            with self.assertRaises(CacheservError) as cm:
                self.c.open(path)
            self.assertEqual(cm.exception.code, code, path)


@needs('CACHESERV_TEST_MD5_SERVER', 'CACHESERV_TEST_ROOT', 'CACHESERV_TEST_FILES')
class TestMd5Server(unittest.TestCase):
    def test_reads_with_md5_pages(self):
        with Client(MD5_SERVER) as c:
            self.assertEqual(c.hello['checksum'], 'md5')
            for name in ['empty.bin', 'one.bin', 'page.bin', 'page1.bin', 'random3m.bin', 'big.bin']:
                self.assertEqual(sha(c.read(name)), disk_sha(name), name)
            self.assertEqual(c.nacks, 0)


@needs('CACHESERV_TEST_MD5_SERVER', 'CACHESERV_TEST_ROOT', 'CACHESERV_TEST_FILES')
class TestShortCircuit(unittest.TestCase):
    """Batches read from the server's shared memory (its HELLO says ``shm`` on loopback)."""

    NAMES = ['block.bin', 'one.bin', 'random3m.bin', 'empty.bin', 'odd.bin', 'page1.bin', 'missing.bin', 'page.bin']

    def served(self, c):
        return c.stats()['bytesServed']

    def test_a_batch_comes_from_shared_memory_byte_exact(self):
        with Client(MD5_SERVER) as c:
            if not c.hello.get('shm'):
                self.skipTest('the server has no shared-memory cache here')
            names = [n for n in self.NAMES if n != 'missing.bin']
            before = self.served(c)
            got = c.read_batch(names)
            for name, data in zip(names, got):
                self.assertEqual(sha(data), disk_sha(name), name)
            # Only the files under 16 KiB crossed the socket.
            small = sum(len(disk(n)) for n in names if len(disk(n)) < 16 * 1024)
            self.assertEqual(self.served(c) - before, small)
            # Again, with every block checked against its crc32.
            with Client(MD5_SERVER, verify=True) as v:
                self.assertEqual([sha(d) for d in v.read_batch(names)], [disk_sha(n) for n in names])

    def test_read_many_yields_in_order_and_raises_at_the_failed_path(self):
        with Client(MD5_SERVER) as c:
            seen = []
            with self.assertRaises(CacheservError) as cm:
                for path, data in c.read_many(self.NAMES, in_flight=len(self.NAMES)):
                    self.assertEqual(sha(data), disk_sha(path), path)
                    seen.append(path)
            self.assertEqual(cm.exception.code, 'ENOENT')
            self.assertEqual(cm.exception.path, 'missing.bin')
            self.assertEqual(seen, self.NAMES[:self.NAMES.index('missing.bin')])

    def test_large_ranges_come_from_shared_memory(self):
        with Client(MD5_SERVER) as c:
            if not c.hello.get('shm'):
                self.skipTest('the server has no shared-memory cache here')
            big = disk('random3m.bin')
            before = self.served(c)
            for offset, length in [(0, 3 * MiB), (1000, 2 * MiB), (MiB - 1, MiB + 2), (len(big) - MiB, 5 * MiB)]:
                self.assertEqual(c.read('random3m.bin', offset, length), big[offset:offset + length], (offset, length))
            self.assertEqual(self.served(c) - before, 0)
            with Client(MD5_SERVER, verify=True) as v:
                self.assertEqual(v.read('random3m.bin', 1000, 2 * MiB), big[1000:1000 + 2 * MiB])
            with self.assertRaises(CacheservError) as cm:
                c.read('random3m.bin', len(big) + 1, 2 * MiB)
            self.assertEqual(cm.exception.code, 'ERANGE')

    def test_read_into_and_open_fill_large_buffers_from_shared_memory(self):
        with Client(MD5_SERVER) as c:
            if not c.hello.get('shm'):
                self.skipTest('the server has no shared-memory cache here')
            big = disk('odd.bin')
            before = self.served(c)
            buf = bytearray(2 * MiB)
            for offset in [0, 1000, len(big) - MiB]:
                n = c.read_into('odd.bin', buf, offset)
                self.assertEqual(n, min(len(buf), len(big) - offset))
                self.assertEqual(bytes(buf[:n]), big[offset:offset + n], offset)
            # A file object read in large pieces (a BufferedReader over it, as TarShardDataset reads shards).
            with io.BufferedReader(c.open('odd.bin', readahead=0), buffer_size=MiB) as f:
                self.assertEqual(f.read(10), big[:10])
                f.seek(3 * MiB - 5)
                self.assertEqual(f.read(), big[3 * MiB - 5:])
                f.seek(0)
                self.assertEqual(f.read(), big)
            # Only the read of the last 22 bytes, under SHARED_RANGE, crossed the socket.
            self.assertEqual(self.served(c) - before, 22)

    def test_a_file_changed_under_an_open_shared_memory_read_is_echanged(self):
        with Client(MD5_SERVER) as c:
            if not c.hello.get('shm'):
                self.skipTest('the server has no shared-memory cache here')
            path = os.path.join(ROOT, 'changing-shm.bin')
            with open(path, 'wb') as f:
                f.write(os.urandom(3 * MiB))
            try:
                with c.open('changing-shm.bin', readahead=0) as f:
                    buf = bytearray(MiB)
                    self.assertEqual(f.readinto(buf), MiB)
                    time.sleep(0.02)
                    with open(path + '.new', 'wb') as g:
                        g.write(os.urandom(4 * MiB))
                    os.rename(path + '.new', path)
                    with self.assertRaises(CacheservError) as cm:
                        f.readinto(buf)
                    self.assertEqual(cm.exception.code, 'ECHANGED')
            finally:
                os.unlink(path)

    def test_off_everything_crosses_the_socket(self):
        with Client(MD5_SERVER, short_circuit=False) as c:
            names = ['block.bin', 'random3m.bin']
            before = self.served(c)
            self.assertEqual([sha(d) for d in c.read_batch(names)], [disk_sha(n) for n in names])
            self.assertEqual(self.served(c) - before, sum(len(disk(n)) for n in names))


@needs('CACHESERV_TEST_MD5_SERVER', 'CACHESERV_TEST_ROOT')
class TestCacheCommands(unittest.TestCase):
    """stats, warm, evict: skipped while the server does not implement them."""

    @classmethod
    def setUpClass(cls):
        cls.c = Client(MD5_SERVER)

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_stats(self):
        self.c.read('one.bin')
        s = call_or_skip(self, self.c.stats)
        for key in ['hits', 'misses', 'hitBytes', 'missBytes', 'evictions', 'diskReads', 'cacheBytes', 'cacheLimit',
                    'entries', 'policy', 'connections', 'totalConnections', 'bytesServed', 'nacks', 'uptime']:
            self.assertIn(key, s)
        self.assertGreaterEqual(s['connections'], 1)
        self.assertGreater(s['bytesServed'], 0)
        self.assertGreater(s['hits'] + s['misses'], 0)
        self.assertIsInstance(s['policy'], str)

    def test_warm_a_list_loads_exactly_those_files_and_skips_the_rest(self):
        names = sorted(os.listdir(os.path.join(ROOT, 'warmdir')))
        call_or_skip(self, self.c.evict, 'warmdir')
        listed = ['warmdir/' + names[1], 'no/such.bin', 'warmdir', 'warmdir/' + names[0]]
        seen = []
        r = call_or_skip(self, self.c.warm, paths=iter(listed), progress=seen.append)
        self.assertEqual(r['files'], 2)
        self.assertEqual(r['skipped'], 2)
        self.assertEqual(r['skippedPaths'], [{'path': 'no/such.bin', 'code': 'ENOENT'}, {'path': 'warmdir', 'code': 'EISDIR'}])
        for n in names:
            self.assertEqual(self.c.stat('warmdir/' + n)['cached'], n in names[:2], n)
        with self.assertRaises(ValueError):
            self.c.warm('warmdir', paths=['x'])

    def test_pin_and_unpin(self):
        r = call_or_skip(self, self.c.pin, 'one.bin')
        self.assertEqual((r['files'], r['bytes']), (1, 1))
        self.assertGreaterEqual(r['pinnedFiles'], 1)
        self.assertTrue(self.c.stat('one.bin')['pinned'])
        self.assertGreaterEqual(self.c.stats()['pinnedBytes'], 1)
        u = self.c.unpin('one.bin')
        self.assertEqual(u['files'], 1)
        self.assertFalse(self.c.stat('one.bin')['pinned'])
        with self.assertRaises(CacheservError) as cm:
            self.c.pin('no/such/file')
        self.assertEqual(cm.exception.code, 'ENOENT')

    def test_warm_then_evict(self):
        names = sorted(os.listdir(os.path.join(ROOT, 'warmdir')))
        total = sum(os.path.getsize(os.path.join(ROOT, 'warmdir', n)) for n in names)
        call_or_skip(self, self.c.evict, 'warmdir')
        seen = []
        r = call_or_skip(self, self.c.warm, 'warmdir', progress=seen.append)
        self.assertEqual((r['files'], r['totalFiles']), (len(names), len(names)))
        self.assertEqual((r['bytes'], r['totalBytes']), (total, total))
        self.assertIs(r['full'], False)
        for p in seen:
            self.assertLessEqual(p['files'], len(names))
        for n in names:
            st = self.c.stat('warmdir/' + n)
            self.assertTrue(st['cached'], n)
            self.assertEqual(st['cachedBytes'], st['size'])
        e = call_or_skip(self, self.c.evict, 'warmdir/' + names[0])
        self.assertEqual(e['files'], 1)
        self.assertGreater(e['bytes'], 0)
        self.assertFalse(self.c.stat('warmdir/' + names[0])['cached'])
        self.assertTrue(self.c.stat('warmdir/' + names[1])['cached'])
        e = call_or_skip(self, self.c.evict, 'warmdir')
        self.assertGreater(e['bytes'], 0)
        self.assertEqual(self.c.stat('warmdir/' + names[1])['cachedBytes'], 0)
        self.c.warm('warmdir/' + names[1])
        self.assertTrue(self.c.stat('warmdir/' + names[1])['cached'])
        e = self.c.evict()
        self.assertGreater(e['bytes'], 0)
        self.assertFalse(self.c.stat('warmdir/' + names[1])['cached'])
        with self.assertRaises(CacheservError) as cm:
            self.c.warm('missing-dir')
        self.assertEqual(cm.exception.code, 'ENOENT')
        with self.assertRaises(CacheservError) as cm:
            self.c.warm('../')
        self.assertEqual(cm.exception.code, 'EACCES')


@needs('CACHESERV_TEST_UNIX_SERVER', 'CACHESERV_TEST_ROOT')
class TestUnixSocket(unittest.TestCase):
    def test_reads_over_a_unix_socket(self):
        with Client(UNIX_SERVER) as c:
            self.assertEqual(sha(c.read('random3m.bin')), disk_sha('random3m.bin'))
            self.assertEqual(c.read('one.bin'), disk('one.bin'))


@needs('CACHESERV_TEST_FAULTY', 'CACHESERV_TEST_ROOT', 'CACHESERV_TEST_FILES')
class TestDamagedLink(unittest.TestCase):
    def test_exact_bytes_through_a_damaging_proxy(self):
        with Client(FAULTY, progress_timeout=0.2) as c:
            for name in ['random3m.bin', 'big.bin', 'odd.bin']:
                self.assertEqual(sha(c.read(name)), disk_sha(name), name)
            self.assertGreater(c.nacks, 0, 'the client asked for resends')

    def test_read_many_over_a_damaged_connection_asks_in_batches(self):
        with Client(FAULTY, progress_timeout=0.2, short_circuit=False) as c:
            names = ['small/' + e['name'] for e in c.ls('small')] + ['random3m.bin', 'odd.bin', 'empty.bin'] * 2
            for path, data in c.read_many(names, in_flight=8):
                self.assertEqual(sha(data), disk_sha(path), path)
            self.assertGreater(c.nacks, 0, 'the client asked for resends')

    def test_many_requests_in_flight_on_a_damaged_connection(self):
        with Client(FAULTY, progress_timeout=0.2) as c:
            names = ['small/' + e['name'] for e in c.ls('small')]
            names += ['random3m.bin', 'page1.bin', 'block.bin'] * 2
            for path, data in c.read_many(names, in_flight=12):
                self.assertEqual(sha(data), disk_sha(path), path)
            with c.open('ranges.bin') as f:
                f.seek(MiB - 3)
                self.assertEqual(f.read(PAGE), disk('ranges.bin')[MiB - 3:MiB - 3 + PAGE])


@needs('CACHESERV_TEST_HOPELESS', 'CACHESERV_TEST_ROOT')
class TestHopelessLink(unittest.TestCase):
    def test_gives_up_with_ecorrupt_and_hands_on_no_wrong_byte(self):
        data = disk('block.bin')
        # Over the link: on its host a read this large would come from shared memory instead.
        with Client(HOPELESS, progress_timeout=0.1, short_circuit=False) as c:
            buf = bytearray(len(data))
            t0 = time.monotonic()
            with self.assertRaises(CacheservError) as cm:
                c.read_into('block.bin', buf)
            self.assertIn(cm.exception.code, ('ECORRUPT', 'ETIMEDOUT'), str(cm.exception))
            self.assertLess(time.monotonic() - t0, 60)
            self.assertGreater(c.nacks, 0)


# --- the dataset example on a class-folder tree --------------------------------


@needs('CACHESERV_TEST_SERVER', 'CACHESERV_TEST_ROOT')
class TestDatasetFromDir(unittest.TestCase):
    """``classes/`` holds cat/a.bin, cat/sub/b.bin, dog/c.bin and a stray classes/top.bin;
    ``emptydir/`` holds an empty directory only."""

    def dataset(self, *args, **kw):
        from dataset import CacheservDataset
        ds = CacheservDataset.from_dir(*args, **kw)
        self.addCleanup(ds.client.close)
        return ds

    def test_recursive_by_default(self):
        ds = self.dataset('classes', SERVER)
        self.assertEqual(ds.files, ['classes/cat/a.bin', 'classes/cat/sub/b.bin', 'classes/dog/c.bin', 'classes/top.bin'])
        self.assertEqual([ds[i] for i in range(len(ds))], [disk(f) for f in ds.files])
        self.assertEqual(self.dataset('classes', SERVER, recursive=False).files, ['classes/top.bin'])

    def test_labels_from_the_first_path_component(self):
        ds = self.dataset('classes/', SERVER, labels=True)
        self.assertEqual(ds.classes, ['cat', 'dog'])
        self.assertEqual(ds.files, ['classes/cat/a.bin', 'classes/cat/sub/b.bin', 'classes/dog/c.bin'])
        self.assertEqual([ds[i] for i in range(3)], [(disk(ds.files[0]), 0), (disk(ds.files[1]), 0), (disk(ds.files[2]), 1)])
        ds = self.dataset('classes', SERVER, labels=True, transform=len)
        self.assertEqual(ds[2], (len(disk('classes/dog/c.bin')), 1))

    def test_an_empty_dataset_is_a_value_error(self):
        for args, kw in [(('emptydir', SERVER), {}), (('classes', SERVER), {'suffix': '.jpg'}), (('emptydir', SERVER), {'labels': True})]:
            with self.assertRaises(ValueError) as cm:
                self.dataset(*args, **kw)
            self.assertIn('no files', str(cm.exception))

    def test_the_script_fails_on_an_empty_dataset(self):
        script = os.path.join(HERE, 'examples', 'dataset.py')
        r = subprocess.run([sys.executable, '-B', script, '--server', SERVER, '--workers', '0', 'emptydir'],
                           capture_output=True, text=True, timeout=60, env=dict(ENV, PYTHONPATH=HERE))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('no files', r.stderr)
        r = subprocess.run([sys.executable, '-B', script, '--server', SERVER, '--workers', '0', '--labels', 'classes'],
                           capture_output=True, text=True, timeout=60, env=dict(ENV, PYTHONPATH=HERE))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('2 classes: cat, dog', r.stdout)
        self.assertIn('3 files', r.stdout)


# --- a server that dies and comes back -------------------------------------------


def _free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@needs('CACHESERV_TEST_NODE', 'CACHESERV_TEST_SERVER_BIN', 'CACHESERV_TEST_ROOT')
class TestServerRestart(unittest.TestCase):
    """Server processes of this test's own, killed by PID (SIGKILL) and started again on the same port."""

    def start(self, port):
        p = subprocess.Popen([NODE, SERVER_BIN, '--root', ROOT, '--port', str(port), '--settle', '0'],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (p.kill(), p.wait(), p.stdout.close()))
        line = p.stdout.readline().decode()
        m = re.search(r'listening on (\S+)', line)
        if not m:
            raise AssertionError('the server did not start: %r' % line)
        return p, m.group(1)

    def kill(self, p):
        p.kill()
        p.wait()

    def restart_later(self, port, delay):
        box = {}
        th = threading.Thread(target=lambda: box.setdefault('p', self.start(port)[0]), daemon=True)
        timer = threading.Timer(delay, th.start)
        timer.start()
        self.addCleanup(timer.cancel)
        return box

    def test_a_server_restarted_between_two_calls(self):
        port = _free_port()
        p, url = self.start(port)
        c = Client(url)
        self.addCleanup(c.close)
        self.assertEqual(c.stat('odd.bin')['size'], FILES['odd.bin'])
        self.kill(p)
        self.restart_later(port, 0.3)  # the next call starts while nothing listens
        self.assertEqual(sha(c.read('random3m.bin')), disk_sha('random3m.bin'))
        self.assertEqual(c.stat('odd.bin')['size'], FILES['odd.bin'])

    def test_a_server_killed_during_read_many_and_a_remote_file(self):
        port = _free_port()
        p, url = self.start(port)
        c = Client(url)
        self.addCleanup(c.close)
        names = ['small/%05d.bin' % i for i in range(60)]
        got = []
        f = c.open('odd.bin', readahead=4096)
        head = f.read(1000)
        for i, (name, data) in enumerate(c.read_many(names, in_flight=8)):
            got.append((name, sha(data)))
            if i == 10:
                self.kill(p)
                self.restart_later(port, 0.3)
        self.assertEqual(got, [(n, disk_sha(n)) for n in names])
        f.seek(-17, io.SEEK_END)
        self.assertEqual(head + f.read(), disk('odd.bin')[:1000] + disk('odd.bin')[-17:])

    def test_fallback_root_reads_the_files_when_the_server_is_gone(self):
        from dataset import CacheservDataset
        port = _free_port()
        p, url = self.start(port)
        files = ['small/%05d.bin' % i for i in range(6)]
        ds = CacheservDataset(files, url, transform=sha, fallback_root=ROOT)
        self.addCleanup(ds.client.close)
        ds.client.retry_delays = (0.05, 0.05)
        self.assertEqual(ds[0], disk_sha(files[0]))
        self.kill(p)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            got = [ds[i] for i in range(len(ds))]
        self.assertEqual(got, [disk_sha(f) for f in files])
        self.assertEqual(err.getvalue().count('unreachable'), 1, err.getvalue())
        self.assertIn(ROOT, err.getvalue())
        # A range and a listing come from the files too; a path may not leave the root.
        self.assertEqual(ds.client.read('ranges.bin', offset=5, length=100), disk('ranges.bin')[5:105])
        self.assertIn({'name': 'one.bin', 'type': 'file', 'size': 1}, ds.client.ls(long=True))
        self.assertEqual(list(ds.client.tree('small', page_size=2)), _local_tree_of('small'))
        with self.assertRaises(CacheservError) as cm:
            ds.client.read('../etc/passwd')
        self.assertEqual(cm.exception.code, 'EACCES')
        with self.assertRaises(CacheservError) as cm:
            ds.client.read('nope.bin')
        self.assertEqual(cm.exception.code, 'ENOENT')

    def test_fallback_root_for_a_server_never_reached(self):
        from dataset import CacheservDataset
        url = 'tcp://127.0.0.1:%d' % _free_port()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            ds = CacheservDataset.from_dir('classes', url, labels=True, fallback_root=ROOT)
            self.addCleanup(ds.client.close)
            self.assertEqual(ds.classes, ['cat', 'dog'])
            self.assertEqual(ds[2], (disk('classes/dog/c.bin'), 1))
        self.assertIn('unreachable', err.getvalue())
        with self.assertRaises(CacheservError) as cm:
            Client(url).read('one.bin')
        self.assertEqual(cm.exception.code, 'ECONNECT', 'without fallback_root, the error as before')


# --- runner -----------------------------------------------------------------


def main():
    gc.collect()
    loader = unittest.TestLoader()
    suite = loader.loadTestsFromModule(sys.modules[__name__])
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2)
    t0 = time.monotonic()
    result = runner.run(suite)
    print('python %s, %d tests in %.1f s' % (sys.version.split()[0], result.testsRun, time.monotonic() - t0))
    for test, reason in result.skipped:
        print('SKIP %s: %s' % (test.id(), reason))
    sys.stdout.flush()
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
