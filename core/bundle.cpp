// Bundle indexing; naming and ordering rules are in docs/formats.md ("Bundle").
#include "core/bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <unordered_map>
#include <utility>

#include "core/bundle_formats.h"
#include "core/file_system.h"
#include "core/utf8.h"

namespace wd {
namespace {

constexpr int kMaxDepth = 64;
constexpr int kOpenFlags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;

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

struct WalkResult {
  std::vector<std::string> files;    // relative paths of bundle files
  std::vector<std::string> indexes;  // relative paths of index files (sharded checkpoints)
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
    } else if (IndexFormatOf(name) != nullptr) {
      out.indexes.push_back(rel);
    } else if (rel_dir.empty() && name == "model.json") {
      out.model_json = true;
    }
  }
  return Status::Ok();
}

std::string FolderOf(const std::string& rel) {
  size_t slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash + 1);
}

SourceLocation LocationIn(int root_fd, const std::string& root, const std::string& rel) {
  SourceLocation loc;
  loc.root_fd = root_fd;
  loc.rel = rel;
  loc.where = root + "/" + rel;
  loc.prefix = FolderOf(rel);
  loc.file_name = rel.substr(loc.prefix.size());
  return loc;
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

// A folder whose files would keep more descriptors open than a publish may
// use fails at once, naming the limit, instead of running into EMFILE part
// way (which the daemon would retry for ever as a fault of the machine). The
// bundle's files may use an eighth of the limit (a quarter once reopened for
// a second reading thread), staged shards a quarter, and the rest is left
// for other publishes at the same time.
Status CheckDescriptorBudget(const std::vector<std::string>& files, const std::string& path) {
  std::map<std::string_view, size_t> kept;  // by extension
  size_t total = 0;
  for (const std::string& rel : files) {
    const BundleFormat& f = *BundleFormatOf(rel);
    if (!f.keeps_descriptor) continue;
    ++kept[f.extension];
    ++total;
  }
  const uint64_t limit = OpenFileLimit();
  if (limit == 0 || total <= limit / 8) return Status::Ok();
  std::string what;
  for (const auto& [extension, n] : kept) {
    what += (what.empty() ? "" : ", ") + std::to_string(n) + " " + std::string(extension);
  }
  return Status::Bundle(path + ": holds " + what +
                        " files, each kept open while the folder is published, but this "
                        "process may open only " +
                        std::to_string(limit) +
                        " files (a bundle may use an eighth: " + std::to_string(limit / 8) +
                        "); merge them into fewer files, or raise the limit (LimitNOFILE= in "
                        "the service, ulimit -n in a shell)");
}

}  // namespace

bool IsIgnoredName(const std::string& name) {
  if (name.empty() || name[0] == '.') return true;
  for (const char* suffix : {".tmp", ".part", ".partial", ".crdownload", "~"}) {
    if (name.ends_with(suffix)) return true;
  }
  return false;
}

Status Bundle::AddFile(int fd, const BundleFormat& format, const SourceLocation& loc) {
  WD_ASSIGN_OR_RETURN(IndexedFile indexed, format.open(fd, loc));
  const size_t index = files_.size();
  files_.push_back(std::move(indexed.file));
  file_names_.push_back(loc.rel.empty() ? loc.file_name : loc.rel);
  for (WeightEntry& w : indexed.weights) {
    w.file = index;
    weights_.push_back(std::move(w));
  }
  return Status::Ok();
}

// Each index file against the weights of its format's files beside it.
Status Bundle::CheckIndexes(const std::vector<std::string>& indexes) {
  for (const std::string& rel : indexes) {
    const BundleFormat& format = *IndexFormatOf(rel);
    const std::string folder = FolderOf(rel);
    std::vector<const WeightEntry*> beside;
    std::vector<std::string> files_beside;
    for (size_t i = 0; i < files_.size(); ++i) {
      const std::string& name = file_names_[i];
      if (FolderOf(name) != folder || BundleFormatOf(name) != &format) continue;
      files_beside.push_back(name.substr(folder.size()));
      for (const WeightEntry& w : weights_) {
        if (w.file == i) beside.push_back(&w);
      }
    }
    WD_ASSIGN_OR_RETURN(int fd, OpenBeneath(root_fd_, rel, path_));
    FdCloser closer(fd);
    WD_RETURN_IF_ERROR(
        format.check_index(fd, LocationIn(root_fd_, path_, rel), beside, files_beside));
  }
  return Status::Ok();
}

Result<std::unique_ptr<Bundle>> Bundle::Open(const std::string& given) {
  std::string path = given;  // "dir/" names "dir": messages read "dir/a.npy"
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  int fd = open(path.c_str(), kOpenFlags);
  if (fd < 0 && errno == ELOOP) return SymlinkError(path);
  if (fd < 0) return ErrnoStatus("open " + path, errno);
  FdCloser closer(fd);
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus("stat " + path, errno);
  std::unique_ptr<Bundle> b(new Bundle());
  b->path_ = path;
  if (S_ISDIR(st.st_mode)) {
    b->is_dir_ = true;
    b->root_fd_ = closer.release();
    WalkResult walk;
    WD_RETURN_IF_ERROR(WalkDir(b->root_fd_, "", path, 0, walk));
    std::sort(walk.files.begin(), walk.files.end());
    std::sort(walk.indexes.begin(), walk.indexes.end());
    if (walk.model_json) b->model_json_ = path + "/model.json";
    WD_RETURN_IF_ERROR(CheckDescriptorBudget(walk.files, path));
    for (const std::string& rel : walk.files) {
      WD_ASSIGN_OR_RETURN(int file_fd, OpenBeneath(b->root_fd_, rel, path));
      WD_RETURN_IF_ERROR(
          b->AddFile(file_fd, *BundleFormatOf(rel), LocationIn(b->root_fd_, path, rel)));
    }
    WD_RETURN_IF_ERROR(CheckNames(b->weights_));
    WD_RETURN_IF_ERROR(b->CheckIndexes(walk.indexes));
  } else if (!S_ISREG(st.st_mode)) {
    return Status::Bundle(path + ": is not a regular file or folder");
  } else if (const BundleFormat* format = BundleFormatOf(path)) {
    SourceLocation loc;
    loc.where = path;
    loc.file_name = path.substr(path.find_last_of('/') + 1);
    b->file_format_ = format;
    WD_RETURN_IF_ERROR(b->AddFile(closer.release(), *format, loc));
    WD_RETURN_IF_ERROR(CheckNames(b->weights_));
  } else {
    return Status::Bundle(path + ": a bundle is " + BundleFileKinds() + " or a folder");
  }
  if (b->weights_.empty()) return Status::Bundle(path + ": bundle holds no weights");
  return b;
}

Bundle::~Bundle() {
  files_.clear();  // before the root they may borrow
  if (root_fd_ >= 0) close(root_fd_);
}

std::map<std::string, std::map<std::string, std::string>> Bundle::Metadata() const {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (size_t i = 0; i < files_.size(); ++i) {
    if (!files_[i]->metadata().empty()) out[file_names_[i]] = files_[i]->metadata();
  }
  return out;
}

Result<std::unique_ptr<Bundle>> Bundle::Reopen() const {
  std::unique_ptr<Bundle> b(new Bundle());
  b->path_ = path_;
  b->is_dir_ = is_dir_;
  b->file_format_ = file_format_;
  b->weights_ = weights_;
  b->model_json_ = model_json_;
  b->file_names_ = file_names_;
  // The root is only read with openat/pread, which ignore the shared offset.
  if (root_fd_ >= 0) {
    WD_ASSIGN_OR_RETURN(b->root_fd_, DupFd(root_fd_, path_));
  }
  for (const auto& f : files_) {
    WD_ASSIGN_OR_RETURN(std::unique_ptr<SourceFile> copy, f->Reopen(b->root_fd_));
    b->files_.push_back(std::move(copy));
  }
  return b;
}

bool Bundle::IsCompressed(const WeightEntry& w) const { return files_[w.file]->IsCompressed(w); }

std::optional<uint64_t> Bundle::RawDataOffset(const WeightEntry& w) const {
  return files_[w.file]->RawDataOffset(w);
}

Result<std::unique_ptr<ByteSource>> Bundle::OpenData(const WeightEntry& w, bool check_crc) const {
  return files_[w.file]->OpenData(w, check_crc);
}

}  // namespace wd
