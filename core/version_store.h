// VersionStore: the place the versions of models are published to. Two
// implementations: a local serve folder (LocalStore, over Publisher and a
// FileSystem) and an S3 bucket prefix (S3Store). Both give the same
// guarantees: a version is immutable and complete before a pointer names
// it; publish and rollback of one model are serialised; an interrupted
// publish leaves only unreferenced data, cleaned up or completed later
// (docs/formats.md, "Version folder"; docs/operations.md, "Object storage").
//
// The data flows one way: plan -> encode (into the StagingArea the store
// hands the producer) -> store.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/file_system.h"
#include "core/staged_content.h"
#include "core/staging_area.h"
#include "core/status.h"

namespace wd {

struct PublishRequest {
  std::string serve_root;     // S (the local store fills it in)
  std::string model;          // M: one path component, validated
  int keep_versions = 3;      // >= 1
  std::string source_path;    // the bundle as dropped, for provenance
  std::string source_sha256;  // digest of the bundle (see docs/formats.md)
  // Its fingerprint (a sample): lets the next publish of this model decide
  // whether to hash the whole bundle before encoding. Empty: not recorded.
  std::string source_fingerprint;
  std::string config_digest;  // sha256 of the canonical pipeline settings
  nlohmann::json settings;    // the settings, recorded for `verify --against`
  // What the bundle's files say about themselves (safetensors'
  // __metadata__), by file: recorded as source.metadata. Null: none.
  nlohmann::json source_metadata;
  // Publish nothing when current came from the same source and config.
  bool skip_if_unchanged = true;
};

struct PublishResult {
  int version = 0;
  std::string version_dir;   // S/M/<v>, or s3://bucket/prefix/M/<v>
  bool unchanged = false;    // nothing new: `version` is the current one
  std::vector<int> removed;  // versions deleted by retention
  // Problems that did not fail the publish (a retention removal that failed,
  // an unreadable publish.json in the unchanged check), for the log.
  std::vector<std::string> warnings;
};

// What publish.json of the current version records about its source.
struct SourceRecord {
  std::string sha256;
  std::string fingerprint;  // "" if not recorded
  std::string config_digest;
};

class VersionStore {
 public:
  using Producer = std::function<Result<StagedContent>(StagingArea& staging)>;
  virtual ~VersionStore() = default;

  // "/srv/models" or "s3://bucket/prefix": for messages, status and hooks.
  virtual const std::string& where() const = 0;
  // Where model M's pointers are: "S/M", or "s3://bucket/prefix/M".
  std::string ModelLocation(const std::string& model) const;

  // Stages a new version, has `produce` write its shards, commits it and
  // moves the pointers to it, then applies retention. On failure the
  // published state is untouched. What interrupted publishes of the same
  // model left is removed first.
  virtual Result<PublishResult> Publish(const PublishRequest& req, const Producer& produce) = 0;
  // Points the model at version `to` (default: the newest kept version
  // older than current). Returns the version now current.
  virtual Result<int> Rollback(const std::string& model, std::optional<int> to) = 0;
  // Removes what interrupted publishes left (staging, unfinished uploads)
  // of every model no publish is working on now: the daemon's start-up
  // sweep (for object storage a listing per model).
  virtual Status RemoveLeftovers() = 0;
  // Version numbers of a model, ascending.
  virtual Result<std::vector<int>> ListVersions(const std::string& model) = 0;
  virtual Result<std::optional<int>> CurrentVersion(const std::string& model) = 0;
  virtual std::optional<SourceRecord> CurrentSource(const std::string& model) = 0;
  // Where clients fetch model M's manifest pointer: a path for a serve
  // folder, the public URL (S3StoreOptions::public_url) for object storage.
  virtual std::string PointerUrl(const std::string& model) const {
    return ModelLocation(model) + "/weights_manifest.json";
  }
  // The models published here (sorted), for status.
  virtual Result<std::vector<std::string>> ListModels() = 0;
};

// A model name must be one safe path component: [A-Za-z0-9._-]+, not "." or
// "..", not starting with '.'.
Status ValidateModelName(const std::string& model);

// A local serve folder: `fs` must outlive the store.
std::unique_ptr<VersionStore> NewLocalStore(FileSystem& fs, const std::string& serve_root);

}  // namespace wd
