// ShardWriter: the ByteSink for one group's byte stream. It cuts the stream
// into the planned shard files in a folder, hashing each as it is written,
// and syncs them when finished.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/file_system.h"
#include "core/plan.h"
#include "core/publisher.h"
#include "core/sha256.h"
#include "core/weight_encoder.h"

namespace wd {

class ShardWriter : public ByteSink {
 public:
  // "fs" and "group" must outlive the writer; files go into `dir`.
  ShardWriter(FileSystem& fs, const std::string& dir, const PlannedGroup& group);
  Status Append(const uint8_t* data, size_t n) override;
  // Checks the stream had exactly the planned size, syncs and closes the
  // files, and returns them with sizes and digests.
  Result<std::vector<ShardFile>> Finish();

 private:
  Status OpenNext();
  Status SyncOldest();

  FileSystem& fs_;
  std::string dir_;
  const PlannedGroup& group_;
  size_t index_ = 0;  // shard being written
  uint64_t written_in_shard_ = 0;
  uint64_t written_total_ = 0;
  std::unique_ptr<WritableFile> file_;
  Sha256 hash_;
  std::vector<ShardFile> done_;
  std::deque<std::unique_ptr<WritableFile>> to_sync_;
};

// A ByteSink that only counts (inspect, dry runs).
class CountingSink : public ByteSink {
 public:
  Status Append(const uint8_t*, size_t n) override {
    bytes += n;
    return Status::Ok();
  }
  uint64_t bytes = 0;
};

}  // namespace wd
