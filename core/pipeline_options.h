// PipelineOptions: how a bundle becomes shards (docs/configuration.md), as plain structs
// with their defaults written in. config/ fills them from YAML; the CLI from
// flags; core/ only reads them.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

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
  // A quantize or group pattern that has no effect on a bundle (it matches
  // no weight, only non-float weights, or only weights an earlier group
  // took) refuses the bundle instead of being a warning. Left out of
  // CanonicalOptions: it changes no output byte.
  bool strict_patterns = false;
};

// Inverse of QuantDtypeName for "uint8", "uint16" and "float16" ("none" is
// not a dtype one can ask for): a kConfig error names the accepted spellings.
Result<QuantDtype> QuantDtypeFromName(const std::string& name);

// A positive byte count: "16", "16B", "4KB"/"4MB"/"4GB" (1000^n) or
// "4KiB"/"4MiB"/"4GiB" (1024^n), units case-sensitive, an optional space
// before the unit. Zero, signs, fractions and overflow are kConfig errors.
Result<uint64_t> ParseByteSize(const std::string& text);

// A quantize map is well formed: every entry names a real dtype and at least
// one non-empty pattern. (Two dtypes matching one weight is found at plan time.)
Status ValidateQuantizeMap(const QuantizeMap& map);

// All of the options are well formed (what config/ and the CLI both check).
Status ValidatePipelineOptions(const PipelineOptions& options);

// Deterministic one-line JSON of what the options mean for the output, the
// input of the config digest in publish.json: fixed key order, pattern sets
// sorted and deduplicated, group names and settings that cannot apply
// (`unmatched` without pattern groups) or change no byte (`strict_patterns`)
// left out.
std::string CanonicalOptions(const PipelineOptions& options);

}  // namespace wd
