// Fuzz target: a whole bundle from bytes. The first input byte picks the file
// kind and the settings (see OptionsFor); the rest is written to a scratch
// file, b.npz (or b.npy; b.safetensors when built as the safetensors target,
// WD_FUZZ_SAFETENSORS), and taken the whole way: Bundle::Open, BundleDigest,
// MakePlan, PublishBundle into a scratch serve folder, the manifest and the
// publish.json settings read back, Verify against the bundle, Inspect.
// Every run removes its files and must leave no descriptor open, and a
// bundle's bytes must never be reported as a fault of the environment (the
// daemon would retry such a bundle forever instead of quarantining it) nor
// as an internal error (an exception or a broken invariant: a bug).
#include <sys/stat.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/bundle.h"
#include "core/file_system.h"
#include "core/inspector.h"
#include "core/manifest.h"
#include "core/options_json.h"
#include "core/pipeline.h"
#include "core/plan.h"
#include "core/sha256.h"
#include "core/verifier.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using wd::fuzz::Fail;

// Plans that encode to more than this are opened, digested and planned but
// not published: a run stays well under a second.
constexpr uint64_t kMaxPublishedBytes = 4u << 20;
// At most this many shard files per group, and this many groups.
constexpr uint64_t kMaxShardsPerGroup = 16;
constexpr size_t kMaxGroups = 16;

// Settings byte: bit 0 .npy instead of .npz (ignored by the safetensors
// target); bits 1-2 the quantize
// fallthrough (none, uint8, uint16, float16); bit 3 groups by_prefix 1;
// bit 4 float16 for "*/kernel"; bits 5-7 the shard size.
wd::PipelineOptions OptionsFor(uint8_t flags) {
  using wd::QuantDtype;
  static constexpr QuantDtype kFallthrough[] = {QuantDtype::kNone, QuantDtype::kUint8,
                                                QuantDtype::kUint16, QuantDtype::kFloat16};
  static constexpr uint64_t kShardSizes[] = {1, 2, 3, 7, 64, 100, 4096, 4u << 20};
  wd::PipelineOptions o;
  o.quantize.fallthrough = kFallthrough[(flags >> 1) & 3];
  if (flags & 8) {
    o.grouping.kind = wd::Grouping::Kind::kByPrefix;
    o.grouping.prefix_components = 1;
  }
  if (flags & 16) o.quantize.patterns.push_back({QuantDtype::kFloat16, {"*/kernel"}});
  o.shard_size = kShardSizes[flags >> 5];
  return o;
}

// Error kinds a bundle's own bytes may cause.
void CheckBundleFault(const wd::Status& s, std::string_view step) {
  if (s.kind() != wd::ErrorKind::kBundle && s.kind() != wd::ErrorKind::kIncomplete &&
      s.kind() != wd::ErrorKind::kConfig) {
    Fail(std::string(step) + " gave an error that is not the bundle's fault: " + s.message());
  }
}

// Groups hold their weights back to back and their shards cover them.
void CheckPlan(const wd::Plan& plan) {
  for (const wd::PlannedGroup& g : plan.groups) {
    uint64_t at = 0;
    for (const wd::PlannedWeight& w : g.weights) {
      if (w.offset != at) Fail("plan: weight offsets are not contiguous in " + g.label);
      at += w.encoded_bytes;
    }
    if (at != g.total_bytes) Fail("plan: group " + g.label + " total is not its weights' sum");
    uint64_t cut = 0;
    for (const wd::PlannedShard& s : g.shards) {
      if (s.offset != cut || s.bytes == 0) Fail("plan: shards of " + g.label + " do not tile");
      cut += s.bytes;
    }
    if (cut != g.total_bytes) Fail("plan: shards of " + g.label + " do not cover the group");
  }
}

// The smallest shard size >= `base` that keeps every group to a few files,
// with no more than kMaxGroups groups; 0 when the plan is too big to publish.
uint64_t BoundedShardSize(const wd::Plan& plan, uint64_t base) {
  uint64_t total = 0, largest = 0;
  for (const wd::PlannedGroup& g : plan.groups) {
    total += g.total_bytes;
    largest = std::max(largest, g.total_bytes);
  }
  if (total > kMaxPublishedBytes || plan.groups.size() > kMaxGroups) return 0;
  return std::max(base, (largest + kMaxShardsPerGroup - 1) / kMaxShardsPerGroup);
}

// docs/formats.md: a .npz hashes as its bytes; a single .npy as a folder
// holding that one file: name, NUL, size as 8 bytes LE, bytes.
std::string ExpectedDigest(const std::string& path, const uint8_t* body, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(body), size);
  if (!path.ends_with(".npy")) return wd::Sha256Hex(bytes);
  std::string named = path.substr(path.find_last_of('/') + 1);
  named.push_back('\0');
  for (int i = 0; i < 8; ++i) named.push_back(static_cast<char>(uint64_t{size} >> (8 * i)));
  named.append(bytes);
  return wd::Sha256Hex(named);
}

std::string ReadOrDie(const std::string& path) {
  auto text = wd::DefaultFileSystem().ReadFile(path, 64u << 20);
  if (!text.ok()) Fail("cannot read back " + path + ": " + text.status().message());
  return *text;
}

// What PublishBundle wrote reads back as what was planned and published.
void CheckPublished(const std::string& bundle_path, const std::string& model_dir,
                    const wd::BundlePublish& pub, const wd::PipelineOptions& options,
                    size_t weight_count, const std::string& digest) {
  const std::string vdir = pub.result.version_dir;
  const std::string text = ReadOrDie(vdir + "/weights_manifest.json");
  auto manifest = wd::ParseManifest(text, vdir);
  if (!manifest.ok()) Fail("published manifest does not parse: " + manifest.status().message());
  if (wd::ManifestToJson(*manifest) != text) Fail("manifest changes in a parse/write round trip");
  size_t weights = 0;
  for (const wd::ManifestGroup& g : *manifest) weights += g.weights.size();
  if (weights != weight_count) Fail("manifest lists a different number of weights");

  const auto record = nlohmann::json::parse(ReadOrDie(vdir + "/publish.json"), nullptr, false);
  if (!record.is_object() || !record.contains("settings")) Fail("publish.json has no settings");
  auto recorded = wd::OptionsFromJson(record["settings"]);
  if (!recorded.ok())
    Fail("publish.json settings do not read back: " + recorded.status().message());
  if (wd::CanonicalOptions(*recorded) != wd::CanonicalOptions(options)) {
    Fail("settings change through publish.json");
  }
  // Fed by the reader from member offsets found in the zip's headers, or
  // hashed on its own: either way the documented digest of the file.
  if (!record.contains("source") || !record["source"].is_object() ||
      record["source"].value("sha256", "") != digest) {
    Fail("publish.json's source.sha256 is not the bundle digest");
  }

  auto report = wd::Verify(model_dir, bundle_path);
  if (!report.ok()) Fail("verify cannot read the version: " + report.status().message());
  if (!report->problems.empty()) Fail("verify finds a problem: " + report->problems.front());
}

void Exercise(const std::string& path, const uint8_t* body, size_t body_size, uint8_t flags) {
  auto bundle = wd::Bundle::Open(path);
  if (!bundle.ok()) return CheckBundleFault(bundle.status(), "Bundle::Open");
  auto digest = wd::BundleDigest(**bundle);
  if (!digest.ok()) Fail("BundleDigest failed on a readable file: " + digest.status().message());
  if (*digest != ExpectedDigest(path, body, body_size)) Fail("BundleDigest is not as documented");

  // The first plan uses the default shard size, as a daemon would; the
  // fuzzed one is applied only once the group sizes are known to be small.
  wd::PipelineOptions options = OptionsFor(flags);
  const uint64_t fuzzed_shard_size = options.shard_size;
  options.shard_size = wd::PipelineOptions().shard_size;
  auto plan = wd::MakePlan(**bundle, options);
  if (!plan.ok()) return CheckBundleFault(plan.status(), "MakePlan");
  CheckPlan(*plan);
  if (plan->groups.size() > kMaxGroups && options.grouping.kind != wd::Grouping::Kind::kSingle) {
    options.grouping = wd::Grouping();
    plan = wd::MakePlan(**bundle, options);
    if (!plan.ok()) return CheckBundleFault(plan.status(), "MakePlan");
  }
  options.shard_size = BoundedShardSize(*plan, fuzzed_shard_size);
  if (options.shard_size == 0) return;

  const std::string serve = wd::fuzz::ScratchDir() + "/serve";
  wd::PublishSettings settings{.model = "fuzz",
                               .keep_versions = 1,
                               .skip_if_unchanged = false,
                               .options = options,
                               .source_path = "",
                               .on_planned = nullptr};
  wd::fuzz::RemoveOrDie(serve);
  if (mkdir(serve.c_str(), 0755) != 0) Fail("cannot make " + serve);
  auto pub = wd::PublishBundle(path, settings, *wd::NewLocalStore(wd::DefaultFileSystem(), serve),
                               nullptr);
  if (pub.ok()) {
    CheckPublished(path, serve + "/fuzz", *pub, options, (*bundle)->weights().size(), *digest);
  } else {
    CheckBundleFault(pub.status(), "PublishBundle");
  }
  auto report = wd::Inspect(path, options);
  if (report.ok() && report->rows.size() != (*bundle)->weights().size()) {
    Fail("inspect lists a different number of weights");
  }
  if (!report.ok()) CheckBundleFault(report.status(), "Inspect");
  // Inspect encodes only quantized weights, so it may pass where publishing
  // fails (an int64 out of int32 range); the other way round it may not.
  if (pub.ok() && !report.ok())
    Fail("inspect refuses a published bundle: " + report.status().message());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t flags = data[0];
#ifdef WD_FUZZ_SAFETENSORS
  const std::string path = wd::fuzz::ScratchDir() + "/b.safetensors";
#else
  const std::string path = wd::fuzz::ScratchDir() + ((flags & 1) ? "/b.npy" : "/b.npz");
#endif
  const int fds_before = wd::fuzz::OpenFdCount();
  wd::fuzz::WriteFileOrDie(path, data + 1, size - 1);
  Exercise(path, data + 1, size - 1, flags);
  wd::fuzz::RemoveOrDie(path);
  wd::fuzz::RemoveOrDie(wd::fuzz::ScratchDir() + "/serve");
  wd::fuzz::CheckNoFdLeak(fds_before);
  return 0;
}
