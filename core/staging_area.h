// StagingArea: where the shards of a version being built go, one shard at a
// time. The local store stages into a folder (files, fsync'd at Flush); the
// S3 store uploads each shard to its version's prefix as it is closed.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "core/file_system.h"
#include "core/status.h"

namespace wd {

// One shard being written. Append the bytes, then Close with their digest.
class ShardOutput {
 public:
  virtual ~ShardOutput() = default;
  virtual Status Append(const uint8_t* data, size_t n) = 0;
  // The shard is complete; `sha256_hex` is the digest of every byte
  // appended. It is durable once the area's Flush returns.
  virtual Status Close(const std::string& sha256_hex) = 0;
};

class StagingArea {
 public:
  virtual ~StagingArea() = default;
  // A new shard `name` (one plain path component, not there yet).
  virtual Result<std::unique_ptr<ShardOutput>> NewShard(const std::string& name) = 0;
  // Every shard closed so far is durable (written back, or acknowledged).
  virtual Status Flush() = 0;
};

// Stages into a folder through `fs`. Closed shards are started writing back
// at once and kept open for one batched fsync at Flush; past a bound (a
// quarter of the descriptor limit, 64 to 1024) the oldest is synced early.
class FolderStagingArea : public StagingArea {
 public:
  // "fs" must outlive the area.
  FolderStagingArea(FileSystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}
  Result<std::unique_ptr<ShardOutput>> NewShard(const std::string& name) override;
  Status Flush() override;
  const std::string& dir() const { return dir_; }

 private:
  class Output;
  Status SyncOldest();

  FileSystem& fs_;
  std::string dir_;
  std::deque<std::unique_ptr<WritableFile>> to_sync_;
};

// Keeps nothing: the shards' digests are all a caller wants (re-encoding a
// bundle to compare it with a published version).
class DiscardingStagingArea : public StagingArea {
  class Null : public ShardOutput {
   public:
    Status Append(const uint8_t*, size_t) override { return Status::Ok(); }
    Status Close(const std::string&) override { return Status::Ok(); }
  };

 public:
  Result<std::unique_ptr<ShardOutput>> NewShard(const std::string&) override {
    return std::unique_ptr<ShardOutput>(new Null);
  }
  Status Flush() override { return Status::Ok(); }
};

}  // namespace wd
