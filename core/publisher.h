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
#include "core/status.h"

namespace wd {

struct ShardFile {
  std::string name;  // plain, e.g. "group1-shard1of3.bin"
  uint64_t bytes = 0;
  std::string sha256;  // lowercase hex
};

// What the pipeline wrote into the staging folder: the shards (already
// written and fsync'd), and what the publisher still has to write.
struct StagedContent {
  Manifest manifest;  // plain shard names
  std::vector<ShardFile> shards;
  // The bundle's model.json as it was given (checked by CheckModelJson);
  // published with only its "weightsManifest" value replaced.
  std::optional<std::string> model_json;
  // The bundle digest, when the request left source_sha256 empty so that the
  // producer could hash the bundle while encoding it.
  std::string source_sha256;
  // The producer stopped early because the bundle is the current version's
  // (shards incomplete): publish nothing.
  bool cancelled = false;
};

struct PublishRequest {
  std::string serve_root;     // S
  std::string model;          // M: one path component, validated
  int keep_versions = 3;      // >= 1
  std::string source_path;    // the bundle as dropped, for provenance
  std::string source_sha256;  // digest of the bundle (see docs/formats.md)
  // Its fingerprint (a sample): lets the next publish of this model decide
  // whether to hash the whole bundle before encoding. Empty: not recorded.
  std::string source_fingerprint;
  std::string config_digest;  // sha256 of the canonical pipeline settings
  nlohmann::json settings;    // the settings, recorded for `verify --against`
  // Publish nothing when current came from the same source and config.
  bool skip_if_unchanged = true;
};

struct PublishResult {
  int version = 0;
  std::string version_dir;   // S/M/<v>
  bool unchanged = false;    // nothing new: `version` is the current one
  std::vector<int> removed;  // versions deleted by retention
  // Problems that did not fail the publish (a retention removal that failed,
  // an unreadable publish.json in the unchanged check), for the log.
  std::vector<std::string> warnings;
};

class Publisher {
 public:
  // "fs" must outlive the publisher.
  explicit Publisher(FileSystem& fs) : fs_(fs) {}

  // Creates S/.staging/<unique>/, calls produce(staging_dir) to write the
  // shards there, then writes weights_manifest.json, publish.json and
  // model.json (if any), fsyncs, renames the folder to S/M/<v>, replaces the
  // pointers, applies retention. On any failure the staging folder is
  // removed and the previously published state is untouched.
  Result<PublishResult> Publish(
      const PublishRequest& req,
      const std::function<Result<StagedContent>(const std::string& staging_dir)>& produce);

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
  struct SourceRecord {
    std::string sha256;
    std::string fingerprint;
    std::string config_digest;
  };
  std::optional<SourceRecord> CurrentSource(const std::string& serve_root,
                                            const std::string& model);
  // The version S/M/current names, if any.
  Result<std::optional<int>> CurrentVersion(const std::string& serve_root,
                                            const std::string& model);

 private:
  FileSystem& fs_;
};

// A model name must be one safe path component: [A-Za-z0-9._-]+, not "." or
// "..", not starting with '.'.
Status ValidateModelName(const std::string& model);

}  // namespace wd
