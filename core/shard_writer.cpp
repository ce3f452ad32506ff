#include "core/shard_writer.h"

#include <algorithm>

namespace wd {

Status ShardWriter::Append(const uint8_t* data, size_t n) {
  while (n > 0) {
    if (index_ >= group_.shards.size()) {
      return Status::Bundle("group '" + group_.label + "' encodes to more than the planned " +
                            std::to_string(group_.total_bytes) + " bytes");
    }
    const PlannedShard& s = group_.shards[index_];
    if (!out_) {
      WD_ASSIGN_OR_RETURN(out_, area_.NewShard(s.name));
      hash_ = Sha256();
      written_in_shard_ = 0;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(n, s.bytes - written_in_shard_));
    WD_RETURN_IF_ERROR(out_->Append(data, take));
    hash_.Update(data, take);
    written_in_shard_ += take;
    written_total_ += take;
    data += take;
    n -= take;
    if (written_in_shard_ == s.bytes) {
      done_.push_back({.name = s.name, .bytes = s.bytes, .sha256 = hash_.HexDigest()});
      WD_RETURN_IF_ERROR(out_->Close(done_.back().sha256));
      out_.reset();
      ++index_;
    }
  }
  return Status::Ok();
}

Result<std::vector<ShardFile>> ShardWriter::Finish() {
  if (written_total_ != group_.total_bytes) {
    return Status::Bundle("group '" + group_.label + "' encoded to " +
                          std::to_string(written_total_) + " bytes but the plan said " +
                          std::to_string(group_.total_bytes));
  }
  WD_RETURN_IF_ERROR(area_.Flush());
  return std::move(done_);
}

}  // namespace wd
