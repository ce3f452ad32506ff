// Helpers shared by the bundle readers (core/source_file.h).
#include "core/source_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <utility>

#include "core/utf8.h"

namespace wd {
namespace {

constexpr int kOpenFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

}  // namespace

// With O_DIRECTORY a link fails ENOTDIR rather than ELOOP: look before saying.
Status OpenFailure(int dirfd, const std::string& name, const std::string& where, int err) {
  struct stat st;
  bool link = fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
  if (err == ELOOP || link) return SymlinkError(where);
  if (err == ENOENT || err == ENOTDIR) {
    return Status::Incomplete(where + ": vanished or changed type while the bundle was read");
  }
  return ErrnoStatus("open " + where, err);
}

const std::map<std::string, std::string>& SourceFile::metadata() const {
  static const std::map<std::string, std::string> kNone;
  return kNone;
}

FdCloser::~FdCloser() {
  if (fd_ >= 0) close(fd_);
}

int FdCloser::release() { return std::exchange(fd_, -1); }

void FdCloser::reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

Status SymlinkError(const std::string& where) {
  return Status::Bundle(where + ": is a symbolic link; weightdrop never follows links");
}

Result<int> OpenBeneath(int root_fd, const std::string& rel, const std::string& root) {
  FdCloser cur(-1);  // the directory reached so far; the root while -1
  for (size_t start = 0;;) {
    size_t end = std::min(rel.find('/', start), rel.size());
    bool last = end == rel.size();
    std::string comp = rel.substr(start, end - start);
    int dir = cur.get() < 0 ? root_fd : cur.get();
    int fd = openat(dir, comp.c_str(), last ? kOpenFlags : kOpenFlags | O_DIRECTORY);
    if (fd < 0) return OpenFailure(dir, comp, root + "/" + rel.substr(0, end), errno);
    cur.reset(fd);
    if (last) break;
    start = end + 1;
  }
  struct stat st;
  if (fstat(cur.get(), &st) != 0) return ErrnoStatus("stat " + root + "/" + rel, errno);
  if (!S_ISREG(st.st_mode)) return Status::Bundle(root + "/" + rel + ": is not a regular file");
  return cur.release();
}

RegionFile::RegionFile(int fd, const SourceLocation& loc)
    : root_fd_(loc.root_fd), rel_(loc.rel), path_(loc.where) {
  root_ = loc.rel.empty() ? loc.where : loc.where.substr(0, loc.where.size() - loc.rel.size() - 1);
  if (loc.root_fd < 0) {
    own_fd_ = fd;
  } else if (fd >= 0) {
    close(fd);
  }
}

RegionFile::~RegionFile() {
  if (own_fd_ >= 0) close(own_fd_);
}

Result<std::unique_ptr<ByteSource>> RegionFile::OpenRegion(uint64_t size, uint64_t offset,
                                                           uint64_t length,
                                                           const std::string& where) const {
  int fd = own_fd_;
  if (fd < 0) {
    WD_ASSIGN_OR_RETURN(fd, OpenBeneath(root_fd_, rel_, root_));
  }
  FdCloser closer(own_fd_ < 0 ? fd : -1);
  WD_ASSIGN_OR_RETURN(uint64_t now, FileSize(fd, path_));
  if (now != size) {
    return Status::Incomplete(path_ + ": changed size since it was indexed (" +
                              std::to_string(size) + " bytes then, " + std::to_string(now) +
                              " now)");
  }
  closer.release();
  return std::unique_ptr<ByteSource>(
      new FileRegionSource(fd, offset, length, where, /*owns_fd=*/own_fd_ < 0));
}

Result<std::unique_ptr<RegionFile>> RegionFile::Reopen(int root_fd) const {
  std::unique_ptr<RegionFile> copy(new RegionFile());
  copy->root_fd_ = root_fd;
  copy->rel_ = rel_;
  copy->root_ = root_;
  copy->path_ = path_;
  if (own_fd_ >= 0) {
    WD_ASSIGN_OR_RETURN(copy->own_fd_, DupFd(own_fd_, path_));
  }
  return copy;
}

Result<uint64_t> FileSize(int fd, const std::string& where) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus("stat " + where, errno);
  return static_cast<uint64_t>(st.st_size);
}

Result<int> DupFd(int fd, const std::string& where) {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return ErrnoStatus("cannot duplicate the descriptor of " + where, errno);
  return copy;
}

std::string EscapeName(const std::string& s) { return EscapeControl(s, !IsValidUtf8(s)); }

std::string DtypeName(const NpyDtype& d) {
  std::string bits = std::to_string(8 * d.item_size);
  switch (d.kind) {
    case SourceKind::kFloat:
      return "float" + bits;
    case SourceKind::kBFloat16:
      return "bfloat16";
    case SourceKind::kFloat8E4M3:
      return "float8_e4m3fn";
    case SourceKind::kFloat8E5M2:
      return "float8_e5m2";
    case SourceKind::kSignedInt:
      return "int" + bits;
    case SourceKind::kUnsignedInt:
      return "uint" + bits;
    case SourceKind::kBool:
      return "bool";
    case SourceKind::kComplex:
      return "complex" + bits;
    case SourceKind::kUnicode:
      return "<U" + std::to_string(d.item_size / 4);
    case SourceKind::kBytes:
      return "S" + std::to_string(d.item_size);
  }
  return d.descr;
}

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

Status SetShape(WeightEntry& w, std::vector<uint64_t> shape) {
  // 0 elements if any dimension is 0, whatever the others and their order.
  const bool empty = std::find(shape.begin(), shape.end(), uint64_t{0}) != shape.end();
  uint64_t count = empty ? 0 : 1;
  for (uint64_t d : shape) {
    if (!empty && count > UINT64_MAX / d) {
      return Status::Bundle(w.where + ": shape " + ShapeString(shape) +
                            " has more elements than 64 bits can count");
    }
    count *= d;
  }
  const uint64_t item = w.dtype.item_size;
  if (item != 0 && count > UINT64_MAX / item) {
    return Status::Bundle(w.where + ": shape " + ShapeString(shape) + " of " + DtypeName(w.dtype) +
                          " is more bytes than 64 bits can count");
  }
  w.shape = std::move(shape);
  w.element_count = count;
  w.data_bytes = count * item;
  return Status::Ok();
}

}  // namespace wd
