// Publisher: turns staged content into a new immutable version S/M/<v>/ and
// moves the two pointers (S/M/weights_manifest.json, S/M/current) atomically
// (docs/formats.md, "Version folder"). Also retention, rollback and removal of leftover staging.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/file_system.h"
#include "core/manifest.h"
#include "core/staged_content.h"
#include "core/staging_area.h"
#include "core/status.h"
#include "core/version_store.h"

namespace wd {

class Publisher {
 public:
  // "fs" must outlive the publisher.
  explicit Publisher(FileSystem& fs) : fs_(fs) {}

  // Creates S/.staging/<unique>/, calls produce with a staging area over it
  // to write the shards there, then writes weights_manifest.json, publish.json and
  // model.json (if any), fsyncs, renames the folder to S/M/<v>, replaces the
  // pointers, applies retention. On any failure the staging folder is
  // removed and the previously published state is untouched.
  Result<PublishResult> Publish(
      const PublishRequest& req,
      const std::function<Result<StagedContent>(StagingArea& staging)>& produce);

  // Points both pointers at version `to` (default: the newest kept version
  // older than current). Returns the version now current.
  Result<int> Rollback(const std::string& serve_root, const std::string& model,
                       std::optional<int> to);

  // Removes S/.staging/* left by a crash mid-publish.
  Status RemoveLeftoverStaging(const std::string& serve_root);

  // Integer version folders of S/M, ascending.
  Result<std::vector<int>> ListVersions(const std::string& serve_root, const std::string& model);
  // source.sha256, source.fingerprint ("" if not recorded) and
  // config_digest recorded by the version current names.
  using SourceRecord = wd::SourceRecord;
  std::optional<SourceRecord> CurrentSource(const std::string& serve_root,
                                            const std::string& model);
  // The version S/M/current names, if any.
  Result<std::optional<int>> CurrentVersion(const std::string& serve_root,
                                            const std::string& model);

 private:
  FileSystem& fs_;
};

}  // namespace wd
