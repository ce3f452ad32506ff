// Pipeline: the one path from a bundle on disk to a published version —
// open, plan, encode into the shards of a VersionStore's staging area, and
// have the store commit them. The CLI's publish and the daemon's workers
// both call PublishBundle.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/file_system.h"
#include "core/pipeline_options.h"
#include "core/plan.h"
#include "core/staged_content.h"
#include "core/staging_area.h"
#include "core/status.h"
#include "core/version_store.h"
#include "core/weight_stream.h"

namespace wd {

// How far WriteShards is: reported after every chunk written and every
// weight finished: the last report has weights_done == weights_total and
// bytes_done == bytes_total (unless encoding stopped early).
struct Progress {
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;
  size_t weights_done = 0;
  size_t weights_total = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

// Every source pass encoding `plan` makes, in order (for a WeightStream).
std::vector<WeightRead> PlanReads(const Plan& plan);

// Encodes every group of `plan` into shards in `area` and returns the
// staged content (manifest with plain shard names, shard digests). Stops
// with a kIncomplete error as soon as `cancelled` (if set) returns true.
// The source bytes come from `stream` (over PlanReads(plan), not yet read
// from), or when null from a read-ahead stream of its own.
Result<StagedContent> WriteShards(const Bundle& bundle, const Plan& plan, StagingArea& area,
                                  const ProgressFn& progress,
                                  const std::function<bool()>& cancelled = nullptr,
                                  WeightStream* stream = nullptr);

// sha256 of the bundle: of the file itself, or for a folder of each file
// (sorted by relative path) as "<path>\0<size as 8 bytes LE><bytes>".
Result<std::string> BundleDigest(const Bundle& bundle);

// sha256 of a sample of the files BundleDigest covers: names, sizes, the
// first and last few KiB of each (docs/formats.md, "Bundle fingerprint").
// Reads ~8 KiB per file (68 KiB per .npz). Equal digests give equal
// fingerprints; a different fingerprint means a different bundle.
Result<std::string> BundleFingerprint(const Bundle& bundle);

struct PublishSettings {
  std::string model;
  int keep_versions = 3;
  // Publish nothing when the current version came from the same bundle and
  // settings; false (`publish --force`) writes a new version regardless.
  bool skip_if_unchanged = true;
  PipelineOptions options;
  // Recorded as publish.json's source.path: where the bundle was dropped
  // (the daemon publishes from processing/, which is gone afterwards).
  // Empty: the bundle's absolute path.
  std::string source_path;
  // Called once the plan is made, before any byte is encoded (any thread).
  std::function<void(const Plan&)> on_planned;
};

struct BundlePublish {
  PublishResult result;
  Plan plan;
};

// The whole publish of the bundle at `path`. When the current version
// records the same settings digest and bundle fingerprint, the bundle is
// hashed before anything is encoded, so an unchanged bundle costs one read;
// otherwise it is hashed alongside encoding. result.warnings starts with
// the plan's unused patterns.
Result<BundlePublish> PublishBundle(const std::string& path, const PublishSettings& settings,
                                    VersionStore& store, const ProgressFn& progress);

// The model name a bundle publishes as by default: its file name without
// bundle extension (BundleStem; a folder: its name).
std::string DefaultModelName(const std::string& bundle_path);

}  // namespace wd
