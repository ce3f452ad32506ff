// What encoding a bundle produced for one new version: the shards (names,
// sizes, digests) already handed to a StagingArea, and the small files the
// store still writes (manifest, model.json). Plan -> encode -> store: this is
// what passes from the encoder to the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/manifest.h"

namespace wd {

struct ShardFile {
  std::string name;  // plain, e.g. "group1-shard1of3.bin"
  uint64_t bytes = 0;
  std::string sha256;  // lowercase hex
};

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

}  // namespace wd
