// FaultInjectingFileSystem: wraps a real FileSystem for tests, counts the
// operations that change the disk by kind, and can fail the Nth one with an
// errno (a full disk, an I/O error) or "crash" after N of them: from then on
// every operation fails, as if the process had died (LevelDB's
// fault_injection_test). Unsynced data is not dropped: this models a process
// crash, not a power cut.
#pragma once

#include <array>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/file_system.h"

namespace wd::test {

enum class FsOp { kCreate, kWrite, kSync, kSyncDir, kRename, kSymlink, kRemove, kMkdir, kAny };

const char* FsOpName(FsOp op);

class FaultInjectingFileSystem : public FileSystem {
 public:
  // "base" must outlive this object.
  explicit FaultInjectingFileSystem(FileSystem& base) : base_(base) {}

  // The nth (1-based) operation of kind `op` (kAny: of any kind) fails with
  // `err` and is not performed. Later operations run normally.
  void FailNth(FsOp op, int n, int err);
  // The first n operations run; every later one (reads included) fails
  // with EIO and is not performed.
  void CrashAfter(int n);
  // Called with each counted operation and its path before it runs (and
  // before any injected failure), e.g. to race another writer.
  void SetBeforeHook(std::function<void(FsOp, const std::string&)> hook);

  int Count(FsOp op) const;  // operations attempted so far (kAny: all)
  bool crashed() const;
  // "create /s/.staging/m.1.ab/group1-shard1of1.bin", one line per operation.
  std::vector<std::string> Log() const;

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  Status MakeDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status Symlink(const std::string& target, const std::string& link) override;
  Status Remove(const std::string& path) override;
  Status RemoveTree(const std::string& path) override;
  Result<std::string> ReadFile(const std::string& path, uint64_t max_bytes) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  bool Exists(const std::string& path) override;
  bool IsDirectory(const std::string& path) override;

  // Counts `op` on `path`; returns the injected failure, if any.
  // Public for the wrapped files; tests do not call it.
  Status Begin(FsOp op, const std::string& path);

 private:
  Status CheckRead(const std::string& path) const;

  FileSystem& base_;
  mutable std::mutex mu_;
  std::array<int, static_cast<size_t>(FsOp::kAny) + 1> counts_{};
  FsOp fail_op_ = FsOp::kAny;
  int fail_n_ = 0;  // 0: none
  int fail_err_ = 0;
  int crash_after_ = -1;  // -1: never
  bool crashed_ = false;
  std::function<void(FsOp, const std::string&)> hook_;
  std::vector<std::string> log_;
};

}  // namespace wd::test
