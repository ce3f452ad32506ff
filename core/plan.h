// Plan: which group each weight joins, how it is quantized, how many bytes it
// encodes to, where it sits in its group, and how each group is cut into
// shard files. Everything later (encoding, writing, manifests) follows it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/element_codec.h"
#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd {

struct PlannedWeight {
  size_t entry = 0;  // index into Bundle::weights()
  OutDtype out = OutDtype::kFloat32;
  QuantDtype quant = QuantDtype::kNone;  // effective: kNone unless out is float32
  uint64_t encoded_bytes = 0;
  uint64_t offset = 0;  // within the group's byte stream
};

struct PlannedShard {
  std::string name;     // group<G>-shard<I>of<N>.bin
  uint64_t offset = 0;  // within the group's byte stream
  uint64_t bytes = 0;
};

struct PlannedGroup {
  std::string label;  // config name, prefix, or "group<G>"
  std::vector<PlannedWeight> weights;
  uint64_t total_bytes = 0;
  std::vector<PlannedShard> shards;  // empty when total_bytes == 0
};

// A quantize or group pattern that had no effect on the bundle: likely a
// typo or a stale setting (docs/configuration.md, "Patterns that match
// nothing").
struct UnusedPattern {
  enum class Why {
    kNoWeight,          // matched no weight name
    kOnlyNonFloat,      // quantize: matched only weights that are not float (not quantized)
    kOnlyTakenEarlier,  // groups: every weight it matched joined an earlier group
  };
  std::string setting;  // "quantize uint8", "group 2" or "group 2 (encoder)"
  std::string pattern;
  Why why = Why::kNoWeight;
};

// "quantize uint8 pattern '*/kernal' matched no weight".
std::string UnusedPatternMessage(const UnusedPattern& u);

struct Plan {
  std::vector<PlannedGroup> groups;  // only groups holding at least one weight
  bool hazard_split = false;         // the tfjs uniform-shard mitigation cut a shard
  // Each pattern once, quantize dtypes first, in settings order.
  std::vector<UnusedPattern> unused_patterns;
};

// Most shard files one version may have. Plan memory follows the shard
// count, so this bounds it whatever sizes a bundle declares.
inline constexpr uint64_t kMaxShards = 100000;

// Builds the plan. String weights are read once to size them. Errors: a
// weight matched by two quantization dtypes (kConfig, naming the weight and
// patterns), `unmatched: error` with an unmatched weight (kConfig), an
// unused pattern with `strict_patterns` (kConfig, naming every one), and any
// read error (kBundle).
Result<Plan> MakePlan(const Bundle& bundle, const PipelineOptions& options);

// POSIX fnmatch without FNM_PATHNAME: '*' also matches '/'.
bool MatchesPattern(const std::string& pattern, const std::string& name);

// Cuts `total` bytes into shards of `shard_size` named for group `g` (1-based).
std::vector<PlannedShard> CutShards(uint64_t total, uint64_t shard_size, int g);

// tfjs-core 4.x builds one CompositeArrayBuffer over every shard of every
// group and, when all shards but the last have the first one's size, finds a
// byte by dividing by that size: a last shard larger than the first then
// decodes wrongly. True for such a layout (sizes in manifest order).
bool IsTfjsUniformShardHazard(const std::vector<uint64_t>& shard_sizes);

// The mitigation (docs/formats.md): split the last shard of the last group in
// two, the second of 1 byte, and rename that group's shards. No-op when the
// layout is safe. Returns true if it split.
bool MitigateTfjsUniformShardHazard(std::vector<PlannedGroup>& groups);

}  // namespace wd
