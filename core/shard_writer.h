// ShardWriter: the ByteSink for one group's byte stream. It cuts the stream
// into the planned shards of a StagingArea, hashing each as it is written,
// and flushes the area when finished.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/byte_sink.h"
#include "core/plan.h"
#include "core/sha256.h"
#include "core/staged_content.h"
#include "core/staging_area.h"

namespace wd {

class ShardWriter : public ByteSink {
 public:
  // "area" and "group" must outlive the writer.
  ShardWriter(StagingArea& area, const PlannedGroup& group) : area_(area), group_(group) {}
  Status Append(const uint8_t* data, size_t n) override;
  // Checks the stream had exactly the planned size, makes the shards
  // durable (StagingArea::Flush), and returns them with sizes and digests.
  Result<std::vector<ShardFile>> Finish();

 private:
  StagingArea& area_;
  const PlannedGroup& group_;
  size_t index_ = 0;  // shard being written
  uint64_t written_in_shard_ = 0;
  uint64_t written_total_ = 0;
  std::unique_ptr<ShardOutput> out_;
  Sha256 hash_;
  std::vector<ShardFile> done_;
};

}  // namespace wd
