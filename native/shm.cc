/*
 * What the shared-memory block store needs that Node's fs lacks: map a store
 * file into memory, make an ArrayBuffer of any range of it, and give a
 * file's pages back to the tmpfs without unmapping them.
 *
 * Mappings are never unmapped: JavaScript may hold views into any of it until
 * they are collected, and a view into an unmapped range would crash the
 * process. A closed store punches out its pages instead; a stray view then
 * reads zeros. A view is a bare V8 ArrayBuffer over the mapped bytes (no
 * finalizer: the mapping outlives it), made per block, so that V8 counts only
 * the block's own length toward its external memory.
 *
 * openBeneath opens a file of the served tree the cheap way, when its path
 * allows (see lib/fs/open-beneath.ts), and readStat reads a block of it and
 * its identity after in one trip to the thread pool (spliceStat: into a
 * store's file, where the block's slot is). dirs.cc adds what the metadata cache
 * uses: whole directories listed on the thread pool, and inotify.
 *
 * The client CLI uses the rest, to move a store's pages into the pipe on its
 * stdout: a pipe's buffer size (Linux's default, 64 KiB, makes a pipe slower
 * than the bytes coming into it), the bytes still unread in it, and
 * splice(2) from a store file.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <node.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <string>

namespace dirs {
void Init(v8::Local<v8::Object> exports);  // dirs.cc
}

namespace {

using v8::ArrayBuffer;
using v8::BackingStore;
using v8::BigInt;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Value;

void Throw(Isolate *isolate, const char *what, int err = 0) {
  char msg[160];
  if (err) snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  else snprintf(msg, sizeof msg, "%s", what);
  isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8(isolate, msg).ToLocalChecked()));
}

bool Int(const FunctionCallbackInfo<Value> &args, int i, int64_t *out) {
  if (i >= args.Length() || !args[i]->IsNumber()) return false;
  double d = args[i].As<Number>()->Value();
  if (d < 0 || d > 9007199254740991.0 || d != static_cast<double>(static_cast<int64_t>(d))) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

/* mapFile(fd, length): the address of the file's first `length` bytes, mapped shared (a bigint handle for view()). */
void MapFile(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, length;
  if (!Int(args, 0, &fd) || !Int(args, 1, &length) || length <= 0 || length % 4096 != 0) {
    return Throw(isolate, "mapFile(fd, length): length a positive multiple of 4096");
  }
  void *base = mmap(nullptr, static_cast<size_t>(length), PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<int>(fd), 0);
  if (base == MAP_FAILED) return Throw(isolate, "mmap", errno);
  args.GetReturnValue().Set(BigInt::NewFromUnsigned(isolate, reinterpret_cast<uint64_t>(base)));
}

/* view(handle, offset, length): an ArrayBuffer over those bytes of the mapping. The caller keeps within its length. */
void View(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t offset, length;
  if (args.Length() < 1 || !args[0]->IsBigInt() || !Int(args, 1, &offset) || !Int(args, 2, &length)) {
    return Throw(isolate, "view(handle, offset, length)");
  }
  char *base = reinterpret_cast<char *>(args[0].As<BigInt>()->Uint64Value());
  std::unique_ptr<BackingStore> store =
      ArrayBuffer::NewBackingStore(base + offset, static_cast<size_t>(length), BackingStore::EmptyDeleter, nullptr);
  args.GetReturnValue().Set(ArrayBuffer::New(isolate, std::move(store)));
}

/* punchHole(fd, offset, length): free the file's pages in that range; its size and mappings stay. */
void PunchHole(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, offset, length;
  if (!Int(args, 0, &fd) || !Int(args, 1, &offset) || !Int(args, 2, &length)) return Throw(isolate, "punchHole(fd, offset, length)");
  if (fallocate(static_cast<int>(fd), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0) Throw(isolate, "fallocate", errno);
}

/* pipeSize(fd[, bytes]): the pipe's buffer size, after asking for at least `bytes` if given (F_GETPIPE_SZ, F_SETPIPE_SZ). */
void PipeSize(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, bytes = -1;
  if (!Int(args, 0, &fd) || (args.Length() > 1 && (!Int(args, 1, &bytes) || bytes > 0x7fffffff))) return Throw(isolate, "pipeSize(fd[, bytes])");
  int size = bytes < 0 ? fcntl(static_cast<int>(fd), F_GETPIPE_SZ) : fcntl(static_cast<int>(fd), F_SETPIPE_SZ, static_cast<int>(bytes));
  if (size < 0) return Throw(isolate, "fcntl(F_SETPIPE_SZ)", errno);
  args.GetReturnValue().Set(Number::New(isolate, size));
}

/* pipeUnread(fd): bytes written into the pipe and not yet read (FIONREAD). */
void PipeUnread(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd;
  if (!Int(args, 0, &fd)) return Throw(isolate, "pipeUnread(fd)");
  int unread = 0;
  if (ioctl(static_cast<int>(fd), FIONREAD, &unread) != 0) return Throw(isolate, "ioctl(FIONREAD)", errno);
  args.GetReturnValue().Set(Number::New(isolate, unread));
}

/*
 * splice(fd, offset, pipe, length): move up to `length` bytes of the file at
 * `offset` into the pipe without copying them (the pipe then refers to the
 * file's pages); blocks while the pipe is full. Returns the bytes moved, 0 at
 * the file's end. An error throws with its errno name as `code` (EPIPE: the
 * reader is gone).
 */
void Splice(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, offset, pipe, length;
  if (!Int(args, 0, &fd) || !Int(args, 1, &offset) || !Int(args, 2, &pipe) || !Int(args, 3, &length)) {
    return Throw(isolate, "splice(fd, offset, pipe, length)");
  }
  loff_t from = offset;
  ssize_t n;
  do n = splice(static_cast<int>(fd), &from, static_cast<int>(pipe), nullptr, static_cast<size_t>(length), SPLICE_F_MOVE);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    int err = errno;
    Local<Value> e = v8::Exception::Error(v8::String::NewFromUtf8(isolate, strerror(err)).ToLocalChecked());
    Local<v8::Context> context = isolate->GetCurrentContext();
    const char *code = strerrorname_np(err);
    e.As<v8::Object>()->Set(context, v8::String::NewFromUtf8Literal(isolate, "code"), v8::String::NewFromUtf8(isolate, code ? code : "EIO").ToLocalChecked()).Check();
    isolate->ThrowException(e);
    return;
  }
  args.GetReturnValue().Set(Number::New(isolate, static_cast<double>(n)));
}

/* The six fields of a stat the server keys files by, into a BigInt64Array (see lib/fs/open-beneath.ts). */
Local<v8::BigInt64Array> StatArray(Isolate *isolate, const struct stat *st) {
  Local<ArrayBuffer> buf = ArrayBuffer::New(isolate, 6 * sizeof(int64_t));
  if (st) {
    int64_t *v = static_cast<int64_t *>(buf->Data());
    v[0] = static_cast<int64_t>(st->st_dev);
    v[1] = static_cast<int64_t>(st->st_ino);
    v[2] = static_cast<int64_t>(st->st_mode);
    v[3] = static_cast<int64_t>(st->st_size);
    v[4] = static_cast<int64_t>(st->st_mtim.tv_sec) * 1000000000 + st->st_mtim.tv_nsec;
    v[5] = static_cast<int64_t>(st->st_ctim.tv_sec) * 1000000000 + st->st_ctim.tv_nsec;
  }
  return v8::BigInt64Array::New(buf, 0, 6);
}

/* A pool job's answer: callback(code, value, stat), `code` the errno name of `err` or null, stat empty on an error. */
void Answer(Isolate *isolate, const v8::Global<v8::Function> &callback, int err, double value, const struct stat *st) {
  v8::HandleScope scope(isolate);
  Local<v8::Context> context = isolate->GetCurrentContext();
  Local<Value> code = v8::Null(isolate);
  if (err) {
    const char *name = strerrorname_np(err);
    code = v8::String::NewFromUtf8(isolate, name ? name : "EIO").ToLocalChecked();
  }
  Local<Value> argv[] = {code, Number::New(isolate, value), StatArray(isolate, err ? nullptr : st)};
  node::MakeCallback(isolate, context->Global(), callback.Get(isolate), 3, argv, {0, 0});
}

/* One openBeneath call, run on libuv's thread pool. */
struct OpenWork {
  uv_work_t req;
  v8::Isolate *isolate;
  v8::Global<v8::Function> callback;
  int dir;
  std::string path;
  int fd = -1;
  int err = 0;
  struct stat st;
};

void OpenWorkRun(uv_work_t *req) {
  OpenWork *w = static_cast<OpenWork *>(req->data);
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int held = static_cast<int>(syscall(SYS_openat2, w->dir, w->path.c_str(), &how, sizeof how));
  if (held < 0) {
    w->err = errno;
    return;
  }
  if (fstat(held, &w->st) != 0) {
    w->err = errno;
  } else if (S_ISREG(w->st.st_mode)) {
    // Opened through the descriptor held: the very inode fstat described, whatever its name names now.
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", held);
    w->fd = open(proc, O_RDONLY | O_CLOEXEC);
    if (w->fd < 0) w->err = errno;
  }
  close(held);
}

void OpenWorkDone(uv_work_t *req, int) {
  std::unique_ptr<OpenWork> w(static_cast<OpenWork *>(req->data));
  Answer(w->isolate, w->callback, w->err, w->fd, &w->st);
}

/*
 * openBeneath(dir, path, callback): on the thread pool, resolve `path` under
 * the directory descriptor `dir` with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) (a path with no symlink at all, staying under `dir`),
 * as an O_PATH descriptor, fstat it, and only if it is a regular file open
 * it for reading. callback(code, fd, stat): `code` an errno name or null; fd
 * -1 when it is not a regular file; stat [dev, ino, mode, size, mtimeNs,
 * ctimeNs] as a BigInt64Array.
 */
void OpenBeneath(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t dir;
  if (!Int(args, 0, &dir) || args.Length() < 3 || !args[1]->IsString() || !args[2]->IsFunction()) {
    return Throw(isolate, "openBeneath(dir, path, callback)");
  }
  auto w = std::make_unique<OpenWork>();
  w->isolate = isolate;
  w->dir = static_cast<int>(dir);
  v8::String::Utf8Value path(isolate, args[1]);
  w->path.assign(*path, path.length());
  w->callback.Reset(isolate, args[2].As<v8::Function>());
  w->req.data = w.get();
  if (uv_queue_work(node::GetCurrentEventLoop(isolate), &w->req, OpenWorkRun, OpenWorkDone) != 0) return Throw(isolate, "uv_queue_work");
  w.release();
}

/*
 * One readStat or spliceStat call, run on libuv's thread pool: bytes of file
 * `fd` from `position` go somewhere (Move), then the file is fstat'ed, so the
 * identity reported is the one it had once the bytes were taken. Answered
 * with callback(code, bytes moved, stat).
 */
struct StatWork {
  uv_work_t req;
  v8::Isolate *isolate;
  v8::Global<v8::Function> callback;
  int fd;
  int64_t position;
  size_t length;
  size_t done = 0;
  int err = 0;
  struct stat st;

  virtual ~StatWork() = default;
  /* On the pool: move up to `length` bytes, counting them in `done`; a failure sets `err` (no fstat then). */
  virtual void Move() = 0;
};

void StatWorkRun(uv_work_t *req) {
  StatWork *w = static_cast<StatWork *>(req->data);
  w->Move();
  if (!w->err && fstat(w->fd, &w->st) != 0) w->err = errno;
}

void StatWorkDone(uv_work_t *req, int) {
  std::unique_ptr<StatWork> w(static_cast<StatWork *>(req->data));
  Answer(w->isolate, w->callback, w->err, static_cast<double>(w->done), &w->st);
}

/* Queue `w` on the pool for `length` bytes of file `fd` at `position`; it is the pool's until StatWorkDone frees it. */
void QueueStatWork(Isolate *isolate, std::unique_ptr<StatWork> w, int64_t fd, int64_t position, int64_t length, Local<Value> callback) {
  w->isolate = isolate;
  w->fd = static_cast<int>(fd);
  w->position = position;
  w->length = static_cast<size_t>(length);
  w->callback.Reset(isolate, callback.As<v8::Function>());
  w->req.data = w.get();
  if (uv_queue_work(node::GetCurrentEventLoop(isolate), &w->req, StatWorkRun, StatWorkDone) != 0) return Throw(isolate, "uv_queue_work");
  w.release();
}

/* readStat's move: pread into a buffer. */
struct ReadWork : StatWork {
  // Keeps the destination alive (and unmoved: a Buffer's bytes never move) until the read is done.
  v8::Global<v8::Value> target;
  char *data;

  void Move() override {
    while (done < length) {
      ssize_t n = pread(fd, data + done, length - done, position + static_cast<int64_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = errno;
        return;
      }
      if (n == 0) break;
      done += static_cast<size_t>(n);
    }
  }
};

/*
 * readStat(fd, buffer, offset, length, position, callback): on the thread
 * pool, read `length` bytes of the file at `position` into the buffer at
 * `offset` (pread until they are all there or the file ends), then fstat it:
 * one trip to the pool where fs.read and fs.fstat take two. callback(code,
 * bytesRead, stat): `code` an errno name or null; stat as openBeneath's.
 */
void ReadStat(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, offset, length, position;
  if (!Int(args, 0, &fd) || args.Length() < 6 || !args[1]->IsArrayBufferView() || !Int(args, 2, &offset) || !Int(args, 3, &length) ||
      !Int(args, 4, &position) || !args[5]->IsFunction()) {
    return Throw(isolate, "readStat(fd, buffer, offset, length, position, callback)");
  }
  Local<v8::ArrayBufferView> view = args[1].As<v8::ArrayBufferView>();
  if (static_cast<size_t>(offset) + static_cast<size_t>(length) > view->ByteLength()) return Throw(isolate, "readStat: beyond the buffer");
  auto w = std::make_unique<ReadWork>();
  w->data = static_cast<char *>(view->Buffer()->Data()) + view->ByteOffset() + offset;
  w->target.Reset(isolate, args[1]);
  QueueStatWork(isolate, std::move(w), fd, position, length, args[5]);
}

/* spliceStat's move: through a pipe into another file. */
struct SpliceWork : StatWork {
  int dst;
  int64_t dstOffset;

  void Move() override {
    // A pipe of its own per move, closed after: kept per thread, its descriptors would outlive every request.
    int pipe[2];
    if (pipe2(pipe, O_CLOEXEC) != 0) {
      err = errno;
      return;
    }
    fcntl(pipe[1], F_SETPIPE_SZ, 1 << 20);  // fewer rounds for a block; a 64 KiB pipe still works
    loff_t in = position;
    loff_t out = dstOffset;
    while (done < length && !err) {
      ssize_t n = splice(fd, &in, pipe[1], nullptr, length - done, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        err = errno;
        break;
      }
      if (n == 0) break;
      for (ssize_t left = n; left > 0;) {
        ssize_t m = splice(pipe[0], nullptr, dst, &out, static_cast<size_t>(left), 0);
        if (m < 0 && errno == EINTR) continue;
        if (m <= 0) {
          err = m < 0 ? errno : ENOSPC;
          break;
        }
        left -= m;
      }
      if (!err) done += static_cast<size_t>(n);
    }
    close(pipe[0]);
    close(pipe[1]);
  }
};

/*
 * spliceStat(fd, position, length, dst, dstOffset, callback): on the thread
 * pool, move `length` bytes of the file at `position` into file `dst` at
 * `dstOffset` (fewer only where the source ends) through a pipe, then fstat
 * the source. For a store slot: the kernel copies the page cache into the
 * tmpfs once, where a read through the slot's mapping also takes a fault, and
 * a zeroed page, per 4 KiB. A full tmpfs fails with ENOSPC. callback(code,
 * bytesMoved, stat), as readStat's.
 */
void SpliceStat(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd, position, length, dst, dstOffset;
  if (!Int(args, 0, &fd) || !Int(args, 1, &position) || !Int(args, 2, &length) || !Int(args, 3, &dst) || !Int(args, 4, &dstOffset) ||
      args.Length() < 6 || !args[5]->IsFunction()) {
    return Throw(isolate, "spliceStat(fd, position, length, dst, dstOffset, callback)");
  }
  auto w = std::make_unique<SpliceWork>();
  w->dst = static_cast<int>(dst);
  w->dstOffset = dstOffset;
  QueueStatWork(isolate, std::move(w), fd, position, length, args[5]);
}

void Init(Local<v8::Object> exports) {
  dirs::Init(exports);
  NODE_SET_METHOD(exports, "mapFile", MapFile);
  NODE_SET_METHOD(exports, "view", View);
  NODE_SET_METHOD(exports, "punchHole", PunchHole);
  NODE_SET_METHOD(exports, "pipeSize", PipeSize);
  NODE_SET_METHOD(exports, "pipeUnread", PipeUnread);
  NODE_SET_METHOD(exports, "splice", Splice);
  NODE_SET_METHOD(exports, "openBeneath", OpenBeneath);
  NODE_SET_METHOD(exports, "readStat", ReadStat);
  NODE_SET_METHOD(exports, "spliceStat", SpliceStat);
}

}  // namespace

NODE_MODULE(NODE_GYP_MODULE_NAME, Init)
