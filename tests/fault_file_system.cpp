#include "tests/fault_file_system.h"

#include <cerrno>
#include <utility>

namespace wd::test {

const char* FsOpName(FsOp op) {
  switch (op) {
    case FsOp::kCreate:
      return "create";
    case FsOp::kWrite:
      return "write";
    case FsOp::kSync:
      return "sync";
    case FsOp::kSyncDir:
      return "syncdir";
    case FsOp::kRename:
      return "rename";
    case FsOp::kSymlink:
      return "symlink";
    case FsOp::kRemove:
      return "remove";
    case FsOp::kMkdir:
      return "mkdir";
    case FsOp::kAny:
      return "any";
  }
  return "?";
}

namespace {

class FaultWritableFile : public WritableFile {
 public:
  FaultWritableFile(FaultInjectingFileSystem& fs, std::unique_ptr<WritableFile> base,
                    std::string path)
      : fs_(fs), base_(std::move(base)), path_(std::move(path)) {}

  Status Append(const void* data, size_t n) override {
    WD_RETURN_IF_ERROR(fs_.Begin(FsOp::kWrite, path_));
    return base_->Append(data, n);
  }
  Status WriteAt(uint64_t offset, const void* data, size_t n) override {
    WD_RETURN_IF_ERROR(fs_.Begin(FsOp::kWrite, path_));
    return base_->WriteAt(offset, data, n);
  }
  Status Sync() override {
    WD_RETURN_IF_ERROR(fs_.Begin(FsOp::kSync, path_));
    return base_->Sync();
  }
  // Not counted: closing a descriptor is what a dying process does too.
  Status Close() override { return base_->Close(); }

 private:
  FaultInjectingFileSystem& fs_;
  std::unique_ptr<WritableFile> base_;
  std::string path_;
};

}  // namespace

void FaultInjectingFileSystem::FailNth(FsOp op, int n, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_op_ = op;
  fail_n_ = n;
  fail_err_ = err;
}

void FaultInjectingFileSystem::CrashAfter(int n) {
  std::lock_guard<std::mutex> lock(mu_);
  crash_after_ = n;
}

void FaultInjectingFileSystem::SetBeforeHook(std::function<void(FsOp, const std::string&)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hook_ = std::move(hook);
}

int FaultInjectingFileSystem::Count(FsOp op) const {
  std::lock_guard<std::mutex> lock(mu_);
  return counts_[static_cast<size_t>(op)];
}

bool FaultInjectingFileSystem::crashed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return crashed_;
}

std::vector<std::string> FaultInjectingFileSystem::Log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

Status FaultInjectingFileSystem::Begin(FsOp op, const std::string& path) {
  std::function<void(FsOp, const std::string&)> hook;
  {
    std::lock_guard<std::mutex> lock(mu_);
    hook = hook_;
  }
  if (hook) hook(op, path);
  std::lock_guard<std::mutex> lock(mu_);
  const int total = ++counts_[static_cast<size_t>(FsOp::kAny)];
  const int nth = ++counts_[static_cast<size_t>(op)];
  log_.push_back(std::string(FsOpName(op)) + " " + path);
  const std::string what = std::string("injected ") + FsOpName(op) + " " + path;
  if (crashed_ || (crash_after_ >= 0 && total > crash_after_)) {
    crashed_ = true;
    log_.back() += " [crashed]";
    return ErrnoStatus(what, EIO);
  }
  if (fail_n_ > 0 && (fail_op_ == FsOp::kAny ? total : nth) == fail_n_ &&
      (fail_op_ == FsOp::kAny || fail_op_ == op)) {
    log_.back() += " [failed]";
    return ErrnoStatus(what, fail_err_);
  }
  return Status::Ok();
}

Status FaultInjectingFileSystem::CheckRead(const std::string& path) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (crashed_) return ErrnoStatus("injected read " + path + " after crash", EIO);
  return Status::Ok();
}

Result<std::unique_ptr<WritableFile>> FaultInjectingFileSystem::NewWritableFile(
    const std::string& path) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kCreate, path));
  WD_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, base_.NewWritableFile(path));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(*this, std::move(file), path));
}

Status FaultInjectingFileSystem::MakeDir(const std::string& path) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kMkdir, path));
  return base_.MakeDir(path);
}

Status FaultInjectingFileSystem::SyncDir(const std::string& path) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kSyncDir, path));
  return base_.SyncDir(path);
}

Status FaultInjectingFileSystem::Rename(const std::string& from, const std::string& to) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kRename, to));
  return base_.Rename(from, to);
}

Status FaultInjectingFileSystem::Symlink(const std::string& target, const std::string& link) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kSymlink, link));
  return base_.Symlink(target, link);
}

Status FaultInjectingFileSystem::Remove(const std::string& path) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kRemove, path));
  return base_.Remove(path);
}

Status FaultInjectingFileSystem::RemoveTree(const std::string& path) {
  WD_RETURN_IF_ERROR(Begin(FsOp::kRemove, path));
  return base_.RemoveTree(path);
}

Result<std::string> FaultInjectingFileSystem::ReadFile(const std::string& path,
                                                       uint64_t max_bytes) {
  WD_RETURN_IF_ERROR(CheckRead(path));
  return base_.ReadFile(path, max_bytes);
}

Result<std::string> FaultInjectingFileSystem::ReadLink(const std::string& path) {
  WD_RETURN_IF_ERROR(CheckRead(path));
  return base_.ReadLink(path);
}

Result<std::vector<std::string>> FaultInjectingFileSystem::ListDir(const std::string& path) {
  WD_RETURN_IF_ERROR(CheckRead(path));
  return base_.ListDir(path);
}

bool FaultInjectingFileSystem::Exists(const std::string& path) {
  return CheckRead(path).ok() && base_.Exists(path);
}

bool FaultInjectingFileSystem::IsDirectory(const std::string& path) {
  return CheckRead(path).ok() && base_.IsDirectory(path);
}

}  // namespace wd::test
