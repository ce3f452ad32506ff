#include "core/staging_area.h"

#include <algorithm>

namespace wd {
namespace {
// Finished shards are kept open for one batched sync at the end; past this
// many the oldest is synced and closed, bounding open descriptors. A sync in
// the middle costs the encoding thread a journal commit (~2 ms on ext4), so
// the bound is as high as the descriptor limit comfortably allows: a quarter
// of it (concurrent publishes in the daemon), 64 to 1024 shards.
size_t MaxUnsynced() {
  static const size_t max = [] {
    const uint64_t limit = OpenFileLimit();
    if (limit == 0) return size_t{64};
    return std::clamp<size_t>(static_cast<size_t>(limit / 4), 64, 1024);
  }();
  return max;
}
}  // namespace

class FolderStagingArea::Output : public ShardOutput {
 public:
  Output(FolderStagingArea& area, std::unique_ptr<WritableFile> file)
      : area_(area), file_(std::move(file)) {}
  Status Append(const uint8_t* data, size_t n) override { return file_->Append(data, n); }
  Status Close(const std::string&) override {
    file_->StartWriteback();
    area_.to_sync_.push_back(std::move(file_));
    if (area_.to_sync_.size() > MaxUnsynced()) return area_.SyncOldest();
    return Status::Ok();
  }

 private:
  FolderStagingArea& area_;
  std::unique_ptr<WritableFile> file_;
};

Result<std::unique_ptr<ShardOutput>> FolderStagingArea::NewShard(const std::string& name) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, fs_.NewWritableFile(dir_ + "/" + name));
  return std::unique_ptr<ShardOutput>(new Output(*this, std::move(file)));
}

Status FolderStagingArea::SyncOldest() {
  WD_RETURN_IF_ERROR(to_sync_.front()->Sync());
  WD_RETURN_IF_ERROR(to_sync_.front()->Close());
  to_sync_.pop_front();
  return Status::Ok();
}

Status FolderStagingArea::Flush() {
  // Batch the syncs at the end: the disk can write all shards back together.
  while (!to_sync_.empty()) WD_RETURN_IF_ERROR(SyncOldest());
  return Status::Ok();
}

}  // namespace wd
