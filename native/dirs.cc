/*
 * What the metadata cache (lib/fs/meta-cache.ts) needs that Node's fs lacks:
 *
 * listDir reads a whole directory in one job on the thread pool, with the
 * lstat of every entry when asked (fstatat through the directory's own
 * descriptor, so an entry swapped for a symlink shows as the symlink). From
 * JavaScript that is a round trip to the pool per entry.
 *
 * The inotify calls tell the cache when a directory it holds changed. The
 * queue is read without blocking, before the cache answers: an event of a
 * change that finished before a request came in is in the queue by then.
 * inotify says nothing of filesystems mounted or unmounted on a directory:
 * the mount table's own descriptor does (mountsChanged).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <node.h>
#include <poll.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <uv.h>

#include <memory>
#include <string>
#include <vector>

namespace dirs {

using v8::ArrayBuffer;
using v8::FunctionCallbackInfo;
using v8::Isolate;
using v8::Local;
using v8::Number;
using v8::Value;

/* Per entry in a listing's stats: dev, ino, size, mtimeNs, ctimeNs, nlink. */
constexpr int STAT_FIELDS = 6;

enum Kind : uint8_t { FILE_ = 0, DIR_ = 1, LINK = 2, OTHER = 3, UNKNOWN = 4 };

void Throw(Isolate *isolate, const char *what, int err = 0) {
  char msg[160];
  if (err) snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  else snprintf(msg, sizeof msg, "%s", what);
  Local<Value> e = v8::Exception::Error(v8::String::NewFromUtf8(isolate, msg).ToLocalChecked());
  if (err) {
    const char *name = strerrorname_np(err);
    e.As<v8::Object>()
        ->Set(isolate->GetCurrentContext(), v8::String::NewFromUtf8Literal(isolate, "code"), v8::String::NewFromUtf8(isolate, name ? name : "EIO").ToLocalChecked())
        .Check();
  }
  isolate->ThrowException(e);
}

bool Int(const FunctionCallbackInfo<Value> &args, int i, int64_t *out) {
  if (i >= args.Length() || !args[i]->IsNumber()) return false;
  double d = args[i].As<Number>()->Value();
  if (d < 0 || d > 2147483647.0 || d != static_cast<double>(static_cast<int64_t>(d))) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

Kind KindOf(mode_t mode) {
  if (S_ISREG(mode)) return FILE_;
  if (S_ISDIR(mode)) return DIR_;
  if (S_ISLNK(mode)) return LINK;
  return OTHER;
}

Kind KindOfDirent(unsigned char type) {
  switch (type) {
    case DT_REG: return FILE_;
    case DT_DIR: return DIR_;
    case DT_LNK: return LINK;
    case DT_UNKNOWN: return UNKNOWN;
    default: return OTHER;
  }
}

void PutStat(int64_t *v, const struct stat &st) {
  v[0] = static_cast<int64_t>(st.st_dev);
  v[1] = static_cast<int64_t>(st.st_ino);
  v[2] = static_cast<int64_t>(st.st_size);
  v[3] = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  v[4] = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  v[5] = static_cast<int64_t>(st.st_nlink);
}

struct ListWork {
  uv_work_t req;
  Isolate *isolate;
  v8::Global<v8::Function> callback;
  std::string path;
  bool withStats = false;
  int err = 0;
  struct stat self;
  int64_t fsType = 0;
  /* The names, each ended by a NUL. */
  std::string names;
  size_t count = 0;
  std::vector<uint8_t> kinds;
  std::vector<int64_t> stats;
};

void ListRun(uv_work_t *req) {
  ListWork *w = static_cast<ListWork *>(req->data);
  int fd = open(w->path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    w->err = errno;
    return;
  }
  struct statfs fs;
  if (fstat(fd, &w->self) != 0 || fstatfs(fd, &fs) != 0) {
    w->err = errno;
    close(fd);
    return;
  }
  w->fsType = static_cast<int64_t>(fs.f_type);
  DIR *dir = fdopendir(fd);
  if (!dir) {
    w->err = errno;
    close(fd);
    return;
  }
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(dir);
    if (!e) {
      if (errno) w->err = errno;
      break;
    }
    const char *name = e->d_name;
    if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
    Kind kind = KindOfDirent(e->d_type);
    int64_t v[STAT_FIELDS] = {0, 0, 0, 0, 0, 0};
    if (w->withStats || kind == UNKNOWN) {
      struct stat st;
      if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // gone since readdir
        kind = OTHER;
      } else {
        kind = KindOf(st.st_mode);
        PutStat(v, st);
      }
    }
    w->names.append(name);
    w->names.push_back('\0');
    w->kinds.push_back(kind);
    if (w->withStats) w->stats.insert(w->stats.end(), v, v + STAT_FIELDS);
    w->count++;
  }
  closedir(dir);
}

void ListDone(uv_work_t *req, int) {
  std::unique_ptr<ListWork> w(static_cast<ListWork *>(req->data));
  Isolate *isolate = w->isolate;
  v8::HandleScope scope(isolate);
  Local<v8::Context> context = isolate->GetCurrentContext();
  Local<Value> code = v8::Null(isolate);
  Local<Value> names = v8::Null(isolate);
  Local<Value> kinds = v8::Null(isolate);
  Local<Value> stats = v8::Null(isolate);
  Local<Value> self = v8::Null(isolate);
  if (w->err) {
    const char *name = strerrorname_np(w->err);
    code = v8::String::NewFromUtf8(isolate, name ? name : "EIO").ToLocalChecked();
  } else {
    // The names come as one string, NUL-separated: one allocation, split in JavaScript.
    names = v8::String::NewFromUtf8(isolate, w->names.data(), v8::NewStringType::kNormal, static_cast<int>(w->names.size())).ToLocalChecked();
    Local<ArrayBuffer> kb = ArrayBuffer::New(isolate, w->count);
    if (w->count) memcpy(kb->Data(), w->kinds.data(), w->count);
    kinds = v8::Uint8Array::New(kb, 0, w->count);
    if (w->withStats) {
      size_t n = w->count * STAT_FIELDS;
      Local<ArrayBuffer> sb = ArrayBuffer::New(isolate, n * sizeof(int64_t));
      if (n) memcpy(sb->Data(), w->stats.data(), n * sizeof(int64_t));
      stats = v8::BigInt64Array::New(sb, 0, n);
    }
    Local<ArrayBuffer> ob = ArrayBuffer::New(isolate, 7 * sizeof(int64_t));
    int64_t *o = static_cast<int64_t *>(ob->Data());
    PutStat(o, w->self);
    o[6] = w->fsType;
    self = v8::BigInt64Array::New(ob, 0, 7);
  }
  Local<Value> argv[] = {code, names, kinds, stats, self};
  Local<v8::Function> cb = w->callback.Get(isolate);
  node::MakeCallback(isolate, context->Global(), cb, 5, argv, {0, 0});
}

/*
 * listDir(path, withStats, callback): on the thread pool, read the directory
 * at `path` whole. callback(code, names, kinds, stats, self): `code` an errno
 * name or null; `names` NUL-ended names in one string; `kinds` a Uint8Array
 * (0 file, 1 directory, 2 symlink, 3 other, 4 unknown: no stat was taken and
 * the directory did not say); `stats` with `withStats` a BigInt64Array of
 * [dev, ino, size, mtimeNs, ctimeNs, nlink] per entry (lstat), else null;
 * `self` the directory's own [dev, ino, size, mtimeNs, ctimeNs, nlink,
 * filesystem type].
 */
void ListDir(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  if (args.Length() < 3 || !args[0]->IsString() || !args[2]->IsFunction()) return Throw(isolate, "listDir(path, withStats, callback)");
  auto w = std::make_unique<ListWork>();
  w->isolate = isolate;
  v8::String::Utf8Value path(isolate, args[0]);
  w->path.assign(*path, path.length());
  w->withStats = args[1]->BooleanValue(isolate);
  w->callback.Reset(isolate, args[2].As<v8::Function>());
  w->req.data = w.get();
  if (uv_queue_work(node::GetCurrentEventLoop(isolate), &w->req, ListRun, ListDone) != 0) return Throw(isolate, "uv_queue_work");
  w.release();
}

/* watchInit(): a new inotify descriptor, non-blocking. */
void WatchInit(const FunctionCallbackInfo<Value> &args) {
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return Throw(args.GetIsolate(), "inotify_init1", errno);
  args.GetReturnValue().Set(fd);
}

/* watchAdd(fd, path): watch the directory at `path` (followed: pass /proc/self/fd/N of a held one) for changes to it and its entries; the watch descriptor. */
void WatchAdd(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd;
  if (!Int(args, 0, &fd) || args.Length() < 2 || !args[1]->IsString()) return Throw(isolate, "watchAdd(fd, path)");
  v8::String::Utf8Value path(isolate, args[1]);
  const uint32_t mask = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK;
  int wd = inotify_add_watch(static_cast<int>(fd), *path, mask);
  if (wd < 0) return Throw(isolate, "inotify_add_watch", errno);
  args.GetReturnValue().Set(wd);
}

/* watchRemove(fd, wd): stop watching; a watch already gone (its directory deleted) is no error. */
void WatchRemove(const FunctionCallbackInfo<Value> &args) {
  int64_t fd, wd;
  if (!Int(args, 0, &fd) || !Int(args, 1, &wd)) return Throw(args.GetIsolate(), "watchRemove(fd, wd)");
  inotify_rm_watch(static_cast<int>(fd), static_cast<int>(wd));
}

/*
 * watchRead(fd): the events queued, without waiting, as an Int32Array of
 * [wd, mask] pairs (names are not needed: a change drops what the cache
 * holds of the whole directory); empty when there are none.
 */
void WatchRead(const FunctionCallbackInfo<Value> &args) {
  Isolate *isolate = args.GetIsolate();
  int64_t fd;
  if (!Int(args, 0, &fd)) return Throw(isolate, "watchRead(fd)");
  std::vector<int32_t> out;
  alignas(struct inotify_event) char buf[64 * 1024];
  for (;;) {
    ssize_t n = read(static_cast<int>(fd), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return Throw(isolate, "read(inotify)", errno);
    }
    if (n == 0) break;
    for (char *p = buf; p < buf + n;) {
      struct inotify_event *e = reinterpret_cast<struct inotify_event *>(p);
      out.push_back(e->wd);
      out.push_back(static_cast<int32_t>(e->mask));
      p += sizeof(struct inotify_event) + e->len;
    }
  }
  Local<ArrayBuffer> ab = ArrayBuffer::New(isolate, out.size() * sizeof(int32_t));
  if (!out.empty()) memcpy(ab->Data(), out.data(), out.size() * sizeof(int32_t));
  args.GetReturnValue().Set(v8::Int32Array::New(ab, 0, out.size()));
}

/* mountsOpen(): a descriptor of /proc/self/mountinfo, or -1. */
void MountsOpen(const FunctionCallbackInfo<Value> &args) {
  args.GetReturnValue().Set(open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
}

/*
 * mountsChanged(fd): whether a filesystem was mounted or unmounted (in this
 * process's namespace) since the descriptor was opened or last asked,
 * without waiting: the kernel marks it POLLPRI once per change seen.
 */
void MountsChanged(const FunctionCallbackInfo<Value> &args) {
  int64_t fd;
  if (!Int(args, 0, &fd)) return Throw(args.GetIsolate(), "mountsChanged(fd)");
  struct pollfd p = {static_cast<int>(fd), POLLPRI, 0};
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  args.GetReturnValue().Set(n > 0 && (p.revents & (POLLPRI | POLLERR)) != 0);
}

void Init(Local<v8::Object> exports) {
  NODE_SET_METHOD(exports, "listDir", ListDir);
  NODE_SET_METHOD(exports, "watchInit", WatchInit);
  NODE_SET_METHOD(exports, "watchAdd", WatchAdd);
  NODE_SET_METHOD(exports, "watchRemove", WatchRemove);
  NODE_SET_METHOD(exports, "watchRead", WatchRead);
  NODE_SET_METHOD(exports, "mountsOpen", MountsOpen);
  NODE_SET_METHOD(exports, "mountsChanged", MountsChanged);
}

}  // namespace dirs
