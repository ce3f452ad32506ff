// Bundle indexing; naming and ordering rules are in docs/formats.md ("Bundle").
#include "core/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <unordered_map>
#include <utility>

#include "core/bundle_formats.h"
#include "core/npz_archive.h"
#include "core/utf8.h"

namespace wd {
namespace {

constexpr int kMaxDepth = 64;
constexpr int kOpenFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string StripSuffix(const std::string& s, size_t n) { return s.substr(0, s.size() - n); }

// Closes an fd on scope exit unless released.
class FdCloser {
 public:
  explicit FdCloser(int fd) : fd_(fd) {}
  ~FdCloser() {
    if (fd_ >= 0) close(fd_);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

Status SymlinkError(const std::string& where) {
  return Status::Bundle(where + ": is a symbolic link; weightdrop never follows links");
}

// Error for a failed openat(dirfd, name, O_NOFOLLOW...) of `where`. With
// O_DIRECTORY a link fails ENOTDIR rather than ELOOP: look before saying.
Status OpenFailure(int dirfd, const std::string& name, const std::string& where, int err) {
  struct stat st;
  bool link = fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
  if (err == ELOOP || link) return SymlinkError(where);
  if (err == ENOENT || err == ENOTDIR) {
    return Status::Incomplete(where + ": vanished or changed type while the bundle was read");
  }
  return ErrnoStatus("open " + where, err);
}

// Control bytes as \xNN; non-ASCII bytes too unless the name is valid UTF-8.
std::string EscapeName(const std::string& s) {
  bool utf8 = IsValidUtf8(s);
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c != 0x7f && (utf8 || c < 0x80)) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

Status CheckWeightName(const std::string& name, const std::string& where) {
  if (name.empty()) return Status::Bundle(where + ": weight name is empty");
  if (!IsValidUtf8(name)) {
    return Status::Bundle(where + ": weight name '" + EscapeName(name) + "' is not valid UTF-8");
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return Status::Bundle(where + ": weight name '" + EscapeName(name) +
                            "' holds a control character");
    }
  }
  return Status::Ok();
}

std::string DtypeName(const NpyDtype& d) {
  std::string bits = std::to_string(8 * d.item_size);
  switch (d.kind) {
    case SourceKind::kFloat:
      return "float" + bits;
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

// `actual` is the whole file or member size; `what` is "file" or "member".
Status CheckDataSize(const NpyHeader& h, uint64_t actual, const std::string& where,
                     const char* what) {
  uint64_t expect = h.header_size + h.data_bytes;
  if (actual == expect) return Status::Ok();
  std::string msg = "header declares shape " + ShapeString(h.shape) + " " + DtypeName(h.dtype) +
                    " = " + std::to_string(h.data_bytes) + " bytes of data but the " + what +
                    " holds " + std::to_string(actual - h.header_size);
  if (actual < expect) {
    // A plain file may still be growing; a member of a complete zip cannot.
    const bool growing = std::string_view(what) == "file";
    return Status::Error(growing ? ErrorKind::kIncomplete : ErrorKind::kBundle,
                         where + ": truncated: " + msg);
  }
  return Status::Bundle(where + ": " + msg + " (trailing bytes)");
}

Result<struct stat> StatFd(int fd, const std::string& where) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus("stat " + where, errno);
  return st;
}

// Opens `rel` under `root_fd` one component at a time, never following a
// link, and requires a regular file.
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
  WD_ASSIGN_OR_RETURN(struct stat st, StatFd(cur.get(), root + "/" + rel));
  if (!S_ISREG(st.st_mode)) return Status::Bundle(root + "/" + rel + ": is not a regular file");
  return cur.release();
}

struct WalkResult {
  std::vector<std::string> files;  // relative paths of .npy/.npz
  bool model_json = false;
};

Result<std::vector<std::string>> ListDir(int dirfd, const std::string& where) {
  int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus("dup " + where, errno);
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    close(dup_fd);
    return ErrnoStatus("opendir " + where, errno);
  }
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
    errno = 0;
  }
  int err = errno;
  closedir(d);
  if (err != 0) return ErrnoStatus("readdir " + where, err);
  return names;
}

Status WalkDir(int dirfd, const std::string& rel_dir, const std::string& root, int depth,
               WalkResult& out) {
  std::string dir_where = rel_dir.empty() ? root : root + "/" + rel_dir;
  WD_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dirfd, dir_where));
  for (const std::string& name : names) {
    if (IsIgnoredName(name)) continue;
    std::string rel = rel_dir.empty() ? name : rel_dir + "/" + name;
    std::string where = root + "/" + rel;
    struct stat st;
    if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return OpenFailure(dirfd, name, where, errno);
    }
    if (S_ISLNK(st.st_mode)) return SymlinkError(where);
    if (S_ISDIR(st.st_mode)) {
      if (depth >= kMaxDepth) return Status::Bundle(where + ": folders nested too deeply");
      int sub = openat(dirfd, name.c_str(), kOpenFlags | O_DIRECTORY);
      if (sub < 0) return OpenFailure(dirfd, name, where, errno);
      FdCloser closer(sub);
      WD_RETURN_IF_ERROR(WalkDir(sub, rel, root, depth + 1, out));
    } else if (!S_ISREG(st.st_mode)) {
      return Status::Bundle(where + ": is not a regular file or folder (fifo, socket or device)");
    } else if (IsBundleFileName(name)) {
      out.files.push_back(rel);
    } else if (rel_dir.empty() && name == "model.json") {
      out.model_json = true;
    }
  }
  return Status::Ok();
}

Result<NpyHeader> ReadNpyFileHeader(int fd, const std::string& where) {
  WD_ASSIGN_OR_RETURN(struct stat st, StatFd(fd, where));
  FileRegionSource src(fd, 0, static_cast<uint64_t>(st.st_size), where, false);
  Result<NpyHeader> h = ReadNpyHeader(src, where);
  if (!h.ok() && static_cast<uint64_t>(st.st_size) < kMaxNpyHeaderText &&
      h.status().message().find("truncated .npy header") != std::string::npos) {
    return Status::Incomplete(h.status().message());  // the file may still be growing
  }
  if (!h.ok()) return h.status();
  WD_RETURN_IF_ERROR(CheckDataSize(*h, static_cast<uint64_t>(st.st_size), where, "file"));
  return h;
}

// Every member of `a` as a weight named "<prefix><member minus .npy>".
Result<std::vector<WeightEntry>> IndexArchive(const NpzArchive& a, int archive_index,
                                              const std::string& prefix,
                                              const std::string& rel_path) {
  std::vector<WeightEntry> out;
  const std::vector<NpzMember>& members = a.members();
  for (size_t i = 0; i < members.size(); ++i) {
    const NpzMember& m = members[i];
    std::string where = a.where() + ": member '" + EscapeName(m.name) + "'";
    if (!EndsWith(m.name, ".npy")) {
      return Status::Bundle(where + ": is not a .npy (np.savez writes only .npy members)");
    }
    WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, a.OpenMember(m));
    WD_ASSIGN_OR_RETURN(NpyHeader h, ReadNpyHeader(*src, where));
    WD_RETURN_IF_ERROR(CheckDataSize(h, m.size, where, "member"));
    out.push_back(WeightEntry{prefix + StripSuffix(m.name, 4), where, std::move(h), rel_path,
                              archive_index, i});
  }
  return out;
}

using Archives = std::vector<std::unique_ptr<NpzArchive>>;

Status AddArchive(std::unique_ptr<NpzArchive> a, const std::string& prefix, const std::string& rel,
                  Archives& archives, std::vector<WeightEntry>& weights) {
  WD_ASSIGN_OR_RETURN(std::vector<WeightEntry> found,
                      IndexArchive(*a, static_cast<int>(archives.size()), prefix, rel));
  archives.push_back(std::move(a));
  for (WeightEntry& w : found) weights.push_back(std::move(w));
  return Status::Ok();
}

// Indexes the .npy or .npz at `rel` inside a folder bundle.
Status AddFile(int root_fd, const std::string& root, const std::string& rel, Archives& archives,
               std::vector<WeightEntry>& weights) {
  WD_ASSIGN_OR_RETURN(int fd, OpenBeneath(root_fd, rel, root));
  std::string where = root + "/" + rel;
  if (BundleFormatOf(rel) == BundleFormat::kNpy) {
    FdCloser closer(fd);
    WD_ASSIGN_OR_RETURN(NpyHeader h, ReadNpyFileHeader(fd, where));
    weights.push_back(WeightEntry{StripSuffix(rel, 4), where, std::move(h), rel, -1, 0});
    return Status::Ok();
  }
  WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> a, NpzArchive::Open(fd, where));
  size_t slash = rel.rfind('/');
  std::string prefix = slash == std::string::npos ? "" : rel.substr(0, slash + 1);
  return AddArchive(std::move(a), prefix, rel, archives, weights);
}

// Names must be valid and unique; the error names both sources.
Status CheckNames(const std::vector<WeightEntry>& weights) {
  std::unordered_map<std::string, const WeightEntry*> seen;
  for (const WeightEntry& w : weights) {
    WD_RETURN_IF_ERROR(CheckWeightName(w.name, w.where));
    auto [it, fresh] = seen.emplace(w.name, &w);
    if (!fresh) {
      return Status::Bundle("duplicate weight name '" + w.name + "': from " + it->second->where +
                            " and from " + w.where);
    }
  }
  return Status::Ok();
}

}  // namespace

bool IsIgnoredName(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* suffix : {".tmp", ".part", ".partial", ".crdownload", "~"}) {
    if (EndsWith(name, suffix)) return true;
  }
  return false;
}

Result<std::unique_ptr<Bundle>> Bundle::Open(const std::string& given) {
  std::string path = given;  // "dir/" names "dir": messages read "dir/a.npy"
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  int fd = open(path.c_str(), kOpenFlags);
  if (fd < 0 && errno == ELOOP) return SymlinkError(path);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  FdCloser closer(fd);
  WD_ASSIGN_OR_RETURN(struct stat st, StatFd(fd, path));
  std::unique_ptr<Bundle> b(new Bundle());
  b->path_ = path;
  if (S_ISDIR(st.st_mode)) {
    b->is_dir_ = true;
    b->root_fd_ = closer.release();
    WalkResult walk;
    WD_RETURN_IF_ERROR(WalkDir(b->root_fd_, "", path, 0, walk));
    std::sort(walk.files.begin(), walk.files.end());
    if (walk.model_json) b->model_json_ = path + "/model.json";
    for (const std::string& rel : walk.files) {
      WD_RETURN_IF_ERROR(AddFile(b->root_fd_, path, rel, b->archives_, b->weights_));
    }
  } else if (!S_ISREG(st.st_mode)) {
    return Status::Bundle(path + ": is not a regular file or folder");
  } else if (BundleFormatOf(path) == BundleFormat::kNpz) {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> a, NpzArchive::Open(closer.release(), path));
    WD_RETURN_IF_ERROR(AddArchive(std::move(a), "", "", b->archives_, b->weights_));
  } else if (BundleFormatOf(path) == BundleFormat::kNpy) {
    WD_ASSIGN_OR_RETURN(NpyHeader h, ReadNpyFileHeader(fd, path));
    std::string base = path.substr(path.find_last_of('/') + 1);
    b->weights_.push_back(WeightEntry{StripSuffix(base, 4), path, std::move(h), "", -1, 0});
    b->root_fd_ = closer.release();
  } else {
    return Status::Bundle(path + ": a bundle is a .npy file, a .npz file or a folder");
  }
  WD_RETURN_IF_ERROR(CheckNames(b->weights_));
  if (b->weights_.empty()) return Status::Bundle(path + ": bundle holds no weights");
  return b;
}

Bundle::~Bundle() {
  if (root_fd_ >= 0) close(root_fd_);
}

Result<std::unique_ptr<Bundle>> Bundle::Reopen() const {
  std::unique_ptr<Bundle> b(new Bundle());
  b->path_ = path_;
  b->is_dir_ = is_dir_;
  b->weights_ = weights_;
  b->model_json_ = model_json_;
  // The root is only read with openat/pread, which ignore the shared offset.
  if (root_fd_ >= 0) {
    b->root_fd_ = fcntl(root_fd_, F_DUPFD_CLOEXEC, 0);
    if (b->root_fd_ < 0) return ErrnoStatus("cannot duplicate the descriptor of " + path_, errno);
  }
  for (const auto& a : archives_) {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<NpzArchive> copy, a->Reopen());
    b->archives_.push_back(std::move(copy));
  }
  return b;
}

bool Bundle::IsCompressed(const WeightEntry& w) const {
  if (w.archive < 0) return false;
  const NpzArchive& a = *archives_[static_cast<size_t>(w.archive)];
  return !a.members()[w.member_index].stored;
}

Result<std::unique_ptr<ByteSource>> Bundle::OpenData(const WeightEntry& w, bool check_crc) const {
  if (w.archive >= 0) {
    const NpzArchive& a = *archives_[static_cast<size_t>(w.archive)];
    const NpzMember& m = a.members()[w.member_index];
    if (!check_crc && m.stored)
      return a.OpenStoredRange(m, w.header.header_size, w.header.data_bytes);
    WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, a.OpenMember(m));
    uint8_t skip[4096];
    for (uint64_t left = w.header.header_size; left > 0;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(left, sizeof skip));
      WD_RETURN_IF_ERROR(ReadExact(*src, skip, n, w.where, w.header.header_size - left));
      left -= n;
    }
    return src;
  }
  uint64_t expect = w.header.header_size + w.header.data_bytes;
  int fd = root_fd_;
  if (is_dir_) {
    WD_ASSIGN_OR_RETURN(fd, OpenBeneath(root_fd_, w.rel_path, path_));
  }
  FdCloser closer(is_dir_ ? fd : -1);
  WD_ASSIGN_OR_RETURN(struct stat st, StatFd(fd, w.where));
  if (static_cast<uint64_t>(st.st_size) != expect) {
    return Status::Incomplete(w.where + ": changed size since it was indexed (" +
                              std::to_string(expect) + " bytes then, " +
                              std::to_string(st.st_size) + " now)");
  }
  closer.release();
  return std::unique_ptr<ByteSource>(new FileRegionSource(
      fd, w.header.header_size, w.header.data_bytes, w.where, /*owns_fd=*/is_dir_));
}

}  // namespace wd
