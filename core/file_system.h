// FileSystem: the few operations publishing needs (create, write, fsync,
// rename, symlink, remove), behind an interface so tests can fail any one of
// them or "crash" between two (LevelDB's Env, Ninja's DiskInterface).
// Paths are plain strings; nothing here follows a symlink it did not make.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace wd {

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(const void* data, size_t n) = 0;
  // Writes at an absolute offset (the file is grown as needed).
  virtual Status WriteAt(uint64_t offset, const void* data, size_t n) = 0;
  virtual Status Sync() = 0;  // fdatasync/fsync
  // Starts writing the data back without waiting (a hint: the later Sync
  // then finds little left to do, and the disk works while we encode).
  virtual void StartWriteback() {}
  virtual Status Close() = 0;  // idempotent; the destructor closes too
};

// An exclusive lock held on a file; released when destroyed (or by the
// kernel when the process dies).
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates `path` (must not exist: O_EXCL), mode 0644.
  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  virtual Status WriteFileAtomically(const std::string& path, const std::string& contents);
  virtual Status MakeDir(const std::string& path) = 0;  // mode 0755; EEXIST is an error
  virtual Status SyncDir(const std::string& path) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  virtual Status Symlink(const std::string& target, const std::string& link) = 0;
  virtual Status Remove(const std::string& path) = 0;      // a file or an empty folder
  virtual Status RemoveTree(const std::string& path) = 0;  // recursive, never follows links
  virtual Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  // Names in a folder (no "." or ".."), unsorted. ENOENT is an error.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;       // lstat succeeds
  virtual bool IsDirectory(const std::string& path) = 0;  // lstat: a real folder
  // An exclusive flock on the file at `path`, created (0644) if missing but
  // never through a symlink. Waits for it when `wait`; otherwise yields
  // nullptr while another holds it. The lock is of the file still at `path`
  // once held: one unlinked or replaced meanwhile is locked anew (with
  // `wait`) or reported. A missing folder is an ENOENT error.
  virtual Result<std::unique_ptr<FileLock>> LockFile(const std::string& path, bool wait);
};

// The real POSIX file system.
FileSystem& DefaultFileSystem();

// 12 random hex digits, for temporary and staging names.
std::string RandomHexSuffix();

// This process's limit on open descriptors (RLIMIT_NOFILE, soft), read now;
// 0 when unlimited or unknown.
uint64_t OpenFileLimit();

}  // namespace wd
