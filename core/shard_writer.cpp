#include "core/shard_writer.h"

#include <sys/resource.h>

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
    struct rlimit rl {};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return size_t{64};
    return std::clamp<size_t>(static_cast<size_t>(rl.rlim_cur) / 4, 64, 1024);
  }();
  return max;
}
}  // namespace

ShardWriter::ShardWriter(FileSystem& fs, const std::string& dir, const PlannedGroup& group)
    : fs_(fs), dir_(dir), group_(group) {}

Status ShardWriter::OpenNext() {
  const PlannedShard& s = group_.shards[index_];
  WD_ASSIGN_OR_RETURN(file_, fs_.NewWritableFile(dir_ + "/" + s.name));
  hash_ = Sha256();
  written_in_shard_ = 0;
  return Status::Ok();
}

Status ShardWriter::Append(const uint8_t* data, size_t n) {
  while (n > 0) {
    if (index_ >= group_.shards.size()) {
      return Status::Bundle("group '" + group_.label + "' encodes to more than the planned " +
                            std::to_string(group_.total_bytes) + " bytes");
    }
    if (!file_) WD_RETURN_IF_ERROR(OpenNext());
    const PlannedShard& s = group_.shards[index_];
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, s.bytes - written_in_shard_));
    WD_RETURN_IF_ERROR(file_->Append(data, take));
    hash_.Update(data, take);
    written_in_shard_ += take;
    written_total_ += take;
    data += take;
    n -= take;
    if (written_in_shard_ == s.bytes) {
      done_.push_back({.name = s.name, .bytes = s.bytes, .sha256 = hash_.HexDigest()});
      file_->StartWriteback();
      to_sync_.push_back(std::move(file_));
      ++index_;
      if (to_sync_.size() > MaxUnsynced()) WD_RETURN_IF_ERROR(SyncOldest());
    }
  }
  return Status::Ok();
}

Status ShardWriter::SyncOldest() {
  WD_RETURN_IF_ERROR(to_sync_.front()->Sync());
  WD_RETURN_IF_ERROR(to_sync_.front()->Close());
  to_sync_.pop_front();
  return Status::Ok();
}

Result<std::vector<ShardFile>> ShardWriter::Finish() {
  if (written_total_ != group_.total_bytes) {
    return Status::Bundle("group '" + group_.label + "' encoded to " +
                          std::to_string(written_total_) + " bytes but the plan said " +
                          std::to_string(group_.total_bytes));
  }
  // Batch the syncs at the end: the disk can write all shards back together.
  while (!to_sync_.empty()) WD_RETURN_IF_ERROR(SyncOldest());
  return std::move(done_);
}

}  // namespace wd
