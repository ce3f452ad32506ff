#include "core/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <string>
#include <utility>

namespace wd {

// Durability notes:
// - WritableFile::Sync is fdatasync(2). It flushes the data and the metadata
//   needed to read it back (the size and block map), which is all a file we
//   rename into place needs; timestamps are not worth a full fsync. The name
//   itself becomes durable when the caller fsyncs the folder (SyncDir).
// - RemoveTree of a missing path succeeds (like `rm -rf`): cleanup must be
//   idempotent after a crash. Every other operation reports ENOENT.

namespace {

int RetryOpen(const char* path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

int RetryOpenAt(int dirfd, const char* name, int flags) {
  int fd;
  do {
    fd = ::openat(dirfd, name, flags);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Writes all n bytes at `offset` (or at the file position when offset < 0),
// looping over short writes and EINTR.
Status WriteAll(int fd, const std::string& path, const void* data, size_t n, int64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = offset < 0 ? ::write(fd, p, n) : ::pwrite(fd, p, n, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write " + path, errno);
    }
    if (w == 0) return ErrnoStatus("write " + path, EIO);
    p += w;
    n -= static_cast<size_t>(w);
    if (offset >= 0) offset += w;
  }
  return Status::Ok();
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override { (void)Close(); }

  Status Append(const void* data, size_t n) override {
    if (fd_ < 0) return Status::Environment("write " + path_ + ": file is closed");
    return WriteAll(fd_, path_, data, n, -1);
  }

  Status WriteAt(uint64_t offset, const void* data, size_t n) override {
    if (fd_ < 0) return Status::Environment("write " + path_ + ": file is closed");
    return WriteAll(fd_, path_, data, n, static_cast<int64_t>(offset));
  }

  void StartWriteback() override {
    if (fd_ >= 0) ::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  Status Sync() override {
    if (fd_ < 0) return Status::Environment("fdatasync " + path_ + ": file is closed");
    if (::fdatasync(fd_) != 0) return ErrnoStatus("fdatasync " + path_, errno);
    return Status::Ok();
  }

  Status Close() override {
    if (fd_ < 0) return Status::Ok();
    // Linux releases the descriptor even when close fails (EINTR included),
    // so it is never retried; the error (e.g. EIO on NFS) is still reported.
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0 && errno != EINTR) return ErrnoStatus("close " + path_, errno);
    return Status::Ok();
  }

 private:
  int fd_;
  std::string path_;
};

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Names in the open folder `dirfd` (consumed: fdopendir takes it over).
Status ReadNames(int dirfd, const std::string& path, std::vector<std::string>* names) {
  DIR* dir = ::fdopendir(dirfd);
  if (dir == nullptr) {
    int err = errno;
    ::close(dirfd);
    return ErrnoStatus("opendir " + path, err);
  }
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(dir);
    if (e == nullptr) break;
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names->emplace_back(e->d_name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoStatus("readdir " + path, err);
  return Status::Ok();
}

// Removes everything inside the open folder `dirfd` without following any
// symlink: subfolders are opened relative to their parent with O_NOFOLLOW,
// so a link swapped in mid-walk is unlinked, never entered.
Status RemoveContents(int dirfd, const std::string& path) {
  std::vector<std::string> names;
  int dup_fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return ErrnoStatus("dup " + path, errno);
  WD_RETURN_IF_ERROR(ReadNames(dup_fd, path, &names));
  for (const std::string& name : names) {
    const std::string child = path + "/" + name;
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;
      return ErrnoStatus("stat " + child, errno);
    }
    if (S_ISDIR(st.st_mode)) {
      int sub = RetryOpenAt(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return ErrnoStatus("open " + child, errno);
      ScopedFd sub_fd(sub);
      WD_RETURN_IF_ERROR(RemoveContents(sub_fd.get(), child));
      if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
        return ErrnoStatus("rmdir " + child, errno);
      }
    } else if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      return ErrnoStatus("unlink " + child, errno);
    }
  }
  return Status::Ok();
}

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = RetryOpen(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) return ErrnoStatus("create " + path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }

  Status MakeDir(const std::string& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) return ErrnoStatus("mkdir " + path, errno);
    return Status::Ok();
  }

  Status SyncDir(const std::string& path) override {
    int fd = RetryOpen(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open folder " + path, errno);
    ScopedFd dir(fd);
    if (::fsync(dir.get()) != 0) return ErrnoStatus("fsync folder " + path, errno);
    return Status::Ok();
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus("rename " + from + " to " + to, errno);
    }
    return Status::Ok();
  }

  Status Symlink(const std::string& target, const std::string& link) override {
    if (::symlink(target.c_str(), link.c_str()) != 0) {
      return ErrnoStatus("symlink " + link + " -> " + target, errno);
    }
    return Status::Ok();
  }

  Status Remove(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      if (::rmdir(path.c_str()) != 0) return ErrnoStatus("rmdir " + path, errno);
    } else if (::unlink(path.c_str()) != 0) {
      return ErrnoStatus("unlink " + path, errno);
    }
    return Status::Ok();
  }

  Status RemoveTree(const std::string& path) override {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return Status::Ok();
      return ErrnoStatus("stat " + path, errno);
    }
    if (!S_ISDIR(st.st_mode)) return Remove(path);
    int fd = RetryOpen(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open " + path, errno);
    {
      ScopedFd dir(fd);
      WD_RETURN_IF_ERROR(RemoveContents(dir.get(), path));
    }
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("rmdir " + path, errno);
    return Status::Ok();
  }

  Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) override {
    int fd = RetryOpen(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return ErrnoStatus("open " + path, errno);
    ScopedFd file(fd);
    std::string out;
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(file.get(), buf, sizeof buf);
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus("read " + path, errno);
      }
      if (r == 0) break;
      if (out.size() + static_cast<size_t>(r) > max_bytes) {
        return Status::Environment("read " + path + ": larger than the limit of " +
                                   std::to_string(max_bytes) + " bytes");
      }
      out.append(buf, static_cast<size_t>(r));
    }
    return out;
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::string buf(256, '\0');
    for (;;) {
      ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
      if (n < 0) return ErrnoStatus("readlink " + path, errno);
      if (static_cast<size_t>(n) < buf.size()) {
        buf.resize(static_cast<size_t>(n));
        return buf;
      }
      buf.resize(buf.size() * 2);
    }
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    int fd = RetryOpen(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("open folder " + path, errno);
    std::vector<std::string> names;
    WD_RETURN_IF_ERROR(ReadNames(fd, path, &names));
    return names;
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  bool IsDirectory(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }
};

}  // namespace

uint64_t OpenFileLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  return static_cast<uint64_t>(rl.rlim_cur);
}

std::string RandomHexSuffix() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  uint64_t r = rng();
  for (int i = 0; i < 12; ++i, r >>= 4) s += kHex[r & 0xf];
  return s;
}

// Writes a temporary file next to `path`, syncs it, renames it over `path`
// and syncs the folder (LevelDB SetCurrentFile, Redis rdbSave). The
// temporary is removed on any failure, so `path` is either the old or the
// new contents, never a mix.
namespace {
class FlockLock : public FileLock {
 public:
  explicit FlockLock(int fd) : fd_(fd) {}
  ~FlockLock() override { ::close(fd_); }
  FlockLock(const FlockLock&) = delete;
  FlockLock& operator=(const FlockLock&) = delete;

 private:
  int fd_;
};
}  // namespace

Result<std::unique_ptr<FileLock>> FileSystem::LockFile(const std::string& path, bool wait) {
  constexpr int kMaxAttempts = 100;
  for (int attempt = 0;; ++attempt) {
    int fd;
    do {
      fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return ErrnoStatus("open lock file " + path, errno);
    int rc;
    do {
      rc = ::flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int err = errno;
      ::close(fd);
      if (!wait && err == EWOULDBLOCK) return std::unique_ptr<FileLock>();
      return ErrnoStatus("lock " + path, err);
    }
    struct stat held, now;
    const bool same = ::fstat(fd, &held) == 0 && ::stat(path.c_str(), &now) == 0 &&
                      held.st_dev == now.st_dev && held.st_ino == now.st_ino;
    if (same) return std::unique_ptr<FileLock>(new FlockLock(fd));
    ::close(fd);
    if (!wait || attempt >= kMaxAttempts) {
      return ErrnoStatus(path + ": the lock file was replaced while waiting for it", ENOENT);
    }
  }
}

Status FileSystem::WriteFileAtomically(const std::string& path, const std::string& contents) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + RandomHexSuffix();
  WD_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, NewWritableFile(tmp));
  Status st = file->Append(contents.data(), contents.size());
  if (st.ok()) st = file->Sync();
  Status closed = file->Close();
  if (st.ok()) st = closed;
  if (st.ok()) st = Rename(tmp, path);
  if (!st.ok()) {
    (void)Remove(tmp);
    return st;
  }
  return SyncDir(dir.empty() ? "/" : dir);
}

FileSystem& DefaultFileSystem() {
  static PosixFileSystem* fs = new PosixFileSystem;
  return *fs;
}

}  // namespace wd
