// PipelineOptions: how a bundle becomes shards (SPEC §3), as plain structs
// with their defaults written in. config/ fills them from YAML; the CLI from
// flags; core/ only reads them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wd {

enum class QuantDtype { kNone, kUint8, kUint16, kFloat16 };

// "uint8" / "uint16" / "float16" (or "none").
const char* QuantDtypeName(QuantDtype d);

struct QuantizeMap {
  // Ordered (dtype, patterns) entries: fnmatch patterns without FNM_PATHNAME.
  std::vector<std::pair<QuantDtype, std::vector<std::string>>> patterns;
  // The one dtype for weights no pattern matched (`dtype: true`), or kNone.
  QuantDtype fallthrough = QuantDtype::kNone;

  bool empty() const { return patterns.empty() && fallthrough == QuantDtype::kNone; }
};

struct GroupRule {
  std::string name;                // optional, for logs
  std::vector<std::string> match;  // fnmatch patterns; first matching rule wins
};

struct Grouping {
  enum class Kind { kSingle, kPatterns, kByPrefix };
  Kind kind = Kind::kSingle;
  std::vector<GroupRule> rules;  // kPatterns
  int prefix_components = 1;     // kByPrefix: N >= 1
  bool unmatched_error = false;  // kPatterns: `unmatched: error` instead of `last`
};

struct PipelineOptions {
  // Bytes per shard file. Larger shards mean fewer HTTP requests per model;
  // smaller ones let browsers and CDNs cache and retry in finer pieces.
  uint64_t shard_size = 4 * 1024 * 1024;
  Grouping grouping;
  QuantizeMap quantize;
};

}  // namespace wd
