#include "core/plan.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

namespace wd {
namespace {

constexpr size_t kSizingChunk = 1 << 20;

// True for a pattern that stands for "every weight": only '*'s, or, in a
// bundle of two weights or more, one that matches each of them.
bool MatchesEverything(const std::string& pattern, const std::vector<WeightEntry>& ws) {
  if (pattern.find_first_not_of('*') == std::string::npos) return true;
  return ws.size() > 1 && std::all_of(ws.begin(), ws.end(), [&](const WeightEntry& w) {
           return MatchesPattern(pattern, w.name);
         });
}

// Weight `name` is matched by quantize patterns of two dtypes. When one of
// them is a catch-all, the fallthrough is what was meant (unless another
// dtype already is the fallthrough: the hint would replace it).
Status QuantConflict(const std::string& name, QuantDtype a, const std::string& pa, QuantDtype b,
                     const std::string& pb, const QuantizeMap& map,
                     const std::vector<WeightEntry>& ws) {
  std::string m = "weight '" + name + "' is matched by quantize." + QuantDtypeName(a) +
                  " pattern '" + pa + "' and by quantize." + QuantDtypeName(b) + " pattern '" + pb +
                  "'; a weight takes one quantization";
  const bool b_all = MatchesEverything(pb, ws);
  const QuantDtype all = b_all ? b : MatchesEverything(pa, ws) ? a : QuantDtype::kNone;
  if (all != QuantDtype::kNone &&
      (map.fallthrough == QuantDtype::kNone || map.fallthrough == all)) {
    const std::string rest = QuantDtypeName(all);
    m += ". For every weight no other pattern matches, use the fallthrough instead of '" +
         (b_all ? pb : pa) + "': --quantize-rest " + rest + " on the command line, `" + rest +
         ": true` under quantize in YAML";
  }
  return Status::Config(m);
}

// The dtype the quantize map assigns to `name`, before the float32 filter.
Result<QuantDtype> QuantFor(const QuantizeMap& map, const std::string& name,
                            const std::vector<WeightEntry>& ws) {
  QuantDtype found = QuantDtype::kNone;
  std::string found_pattern;
  for (const auto& [dtype, patterns] : map.patterns) {
    for (const auto& p : patterns) {
      if (!MatchesPattern(p, name)) continue;
      if (found != QuantDtype::kNone && found != dtype) {
        return QuantConflict(name, found, found_pattern, dtype, p, map, ws);
      }
      found = dtype;
      found_pattern = p;
    }
  }
  return found == QuantDtype::kNone ? map.fallthrough : found;
}

// Quantize patterns that quantize no weight: they match none, or only
// weights that are not float.
void FindUnusedQuantPatterns(const QuantizeMap& map, const std::vector<WeightEntry>& ws,
                             std::vector<UnusedPattern>* out) {
  std::set<std::pair<QuantDtype, std::string>> seen;
  for (const auto& [dtype, patterns] : map.patterns) {
    for (const auto& p : patterns) {
      if (!seen.insert({dtype, p}).second) continue;
      bool any = false;
      bool quantized = false;
      for (size_t i = 0; i < ws.size() && !quantized; ++i) {
        if (!MatchesPattern(p, ws[i].name)) continue;
        any = true;
        quantized = MapDtype(ws[i].dtype) == OutDtype::kFloat32;
      }
      if (quantized) continue;
      out->push_back(
          {.setting = std::string("quantize ") + QuantDtypeName(dtype),
           .pattern = p,
           .why = any ? UnusedPattern::Why::kOnlyNonFloat : UnusedPattern::Why::kNoWeight});
    }
  }
}

// Group patterns that brought no weight into their group. REQUIRES:
// groups[r] holds rule r's weights (before empty groups are dropped).
void FindUnusedGroupPatterns(const Grouping& g, const std::vector<WeightEntry>& ws,
                             const std::vector<PlannedGroup>& groups,
                             std::vector<UnusedPattern>* out) {
  for (size_t r = 0; r < g.rules.size(); ++r) {
    std::set<std::string> seen;
    for (const std::string& p : g.rules[r].match) {
      if (!seen.insert(p).second) continue;
      const auto& joined = groups[r].weights;
      if (std::any_of(joined.begin(), joined.end(), [&](const PlannedWeight& pw) {
            return MatchesPattern(p, ws[pw.entry].name);
          })) {
        continue;
      }
      const bool any = std::any_of(ws.begin(), ws.end(),
                                   [&](const WeightEntry& w) { return MatchesPattern(p, w.name); });
      const std::string& name = g.rules[r].name;
      out->push_back(
          {.setting = "group " + std::to_string(r + 1) + (name.empty() ? "" : " (" + name + ")"),
           .pattern = p,
           .why = any ? UnusedPattern::Why::kOnlyTakenEarlier : UnusedPattern::Why::kNoWeight});
    }
  }
}

// First-N-path-component prefix of a weight name ("a/b/c", 2 -> "a/b").
std::string PrefixOf(const std::string& name, int n) {
  size_t pos = 0;
  for (int i = 0; i < n; ++i) {
    pos = name.find('/', pos);
    if (pos == std::string::npos) return name;
    if (i + 1 < n) ++pos;
  }
  return name.substr(0, pos);
}

// Assigns every weight to a group key (ordered), per the grouping settings.
// Group patterns that brought in no weight are added to `unused`.
Result<std::vector<PlannedGroup>> AssignGroups(const Bundle& bundle, const Grouping& g,
                                               std::vector<UnusedPattern>* unused) {
  std::vector<PlannedGroup> groups;
  const auto& ws = bundle.weights();
  if (g.kind == Grouping::Kind::kSingle) {
    groups.resize(1);
    for (size_t i = 0; i < ws.size(); ++i) groups[0].weights.push_back({.entry = i});
  } else if (g.kind == Grouping::Kind::kByPrefix) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < ws.size(); ++i) {
      std::string key = PrefixOf(ws[i].name, g.prefix_components);
      auto [it, inserted] = index.try_emplace(key, groups.size());
      if (inserted)
        groups.push_back(PlannedGroup{.label = key, .weights = {}, .total_bytes = 0, .shards = {}});
      groups[it->second].weights.push_back({.entry = i});
    }
  } else {
    groups.resize(g.rules.size() + 1);
    for (size_t r = 0; r < g.rules.size(); ++r) groups[r].label = g.rules[r].name;
    groups.back().label = "unmatched";
    for (size_t i = 0; i < ws.size(); ++i) {
      size_t r = 0;
      for (; r < g.rules.size(); ++r) {
        const auto& m = g.rules[r].match;
        if (std::any_of(m.begin(), m.end(),
                        [&](const std::string& p) { return MatchesPattern(p, ws[i].name); }))
          break;
      }
      if (r == g.rules.size() && g.unmatched_error) {
        return Status::Config("weight '" + ws[i].name +
                              "' matches no group and `unmatched: error` is set");
      }
      groups[r].weights.push_back({.entry = i});
    }
    FindUnusedGroupPatterns(g, ws, groups, unused);
  }
  std::erase_if(groups, [](const PlannedGroup& pg) { return pg.weights.empty(); });
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].label.empty()) groups[i].label = "group" + std::to_string(i + 1);
  }
  return groups;
}

Result<uint64_t> StringWeightBytes(const Bundle& bundle, const WeightEntry& w) {
  WD_ASSIGN_OR_RETURN(auto src, bundle.OpenData(w));
  const NpyDtype& dt = w.dtype;
  const size_t per_chunk = std::max<size_t>(1, kSizingChunk / dt.item_size);
  std::vector<uint8_t> buf(per_chunk * dt.item_size);
  uint64_t total = 0;
  for (uint64_t done = 0; done < w.element_count;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(per_chunk, w.element_count - done));
    WD_RETURN_IF_ERROR(ReadExact(*src, buf.data(), n * dt.item_size, w.where,
                                 w.data_offset + done * dt.item_size));
    WD_ASSIGN_OR_RETURN(uint64_t bytes, EncodedStringsSize(dt, buf.data(), n, w.name, done));
    total += bytes;
    done += n;
  }
  return total;
}

Result<uint64_t> EncodedBytes(const Bundle& bundle, const WeightEntry& w, OutDtype out,
                              QuantDtype quant) {
  const uint64_t n = w.element_count;
  switch (quant) {
    case QuantDtype::kUint8:
      return n;
    case QuantDtype::kUint16:
    case QuantDtype::kFloat16:
      return n * 2;
    case QuantDtype::kNone:
      break;
  }
  if (out == OutDtype::kString) return StringWeightBytes(bundle, w);
  const uint64_t size = OutElementSize(out);
  if (n > UINT64_MAX / size)
    return Status::Bundle(w.where + ": weight '" + w.name + "' is too large");
  return n * size;
}

}  // namespace

bool MatchesPattern(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::vector<PlannedShard> CutShards(uint64_t total, uint64_t shard_size, int g) {
  std::vector<PlannedShard> shards;
  const uint64_t n = total == 0 ? 0 : (total + shard_size - 1) / shard_size;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t off = i * shard_size;
    shards.push_back({.name = "group" + std::to_string(g) + "-shard" + std::to_string(i + 1) +
                              "of" + std::to_string(n) + ".bin",
                      .offset = off,
                      .bytes = std::min(shard_size, total - off)});
  }
  return shards;
}

bool IsTfjsUniformShardHazard(const std::vector<uint64_t>& sizes) {
  if (sizes.size() < 2) return false;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) {
    if (sizes[i] != sizes[0]) return false;
  }
  return sizes.back() > sizes[0];
}

bool MitigateTfjsUniformShardHazard(std::vector<PlannedGroup>& groups) {
  std::vector<uint64_t> sizes;
  PlannedGroup* last = nullptr;
  for (auto& g : groups) {
    for (const auto& s : g.shards) sizes.push_back(s.bytes);
    if (!g.shards.empty()) last = &g;
  }
  if (!IsTfjsUniformShardHazard(sizes)) return false;
  // Cut the final shard into (L-1, 1): the new last shard can never be larger
  // than the first, so either lookup tfjs picks is then correct.
  PlannedShard tail = last->shards.back();
  last->shards.back().bytes = tail.bytes - 1;
  last->shards.push_back({.name = "", .offset = tail.offset + tail.bytes - 1, .bytes = 1});
  const std::string prefix =
      last->shards.front().name.substr(0, last->shards.front().name.find('-'));
  const size_t n = last->shards.size();
  for (size_t i = 0; i < n; ++i) {
    last->shards[i].name =
        prefix + "-shard" + std::to_string(i + 1) + "of" + std::to_string(n) + ".bin";
  }
  return true;
}

std::string UnusedPatternMessage(const UnusedPattern& u) {
  const std::string head = u.setting + " pattern '" + u.pattern + "' matched ";
  switch (u.why) {
    case UnusedPattern::Why::kNoWeight:
      break;
    case UnusedPattern::Why::kOnlyNonFloat:
      return head + "only non-float weights (not quantized)";
    case UnusedPattern::Why::kOnlyTakenEarlier:
      return head + "only weights an earlier group took";
  }
  return head + "no weight";
}

Result<Plan> MakePlan(const Bundle& bundle, const PipelineOptions& options) {
  if (bundle.weights().empty()) {
    return Status::Bundle(bundle.path() + ": holds no weights");
  }
  const std::vector<WeightEntry>& ws = bundle.weights();
  std::vector<UnusedPattern> unused_groups;
  auto groups_or = AssignGroups(bundle, options.grouping, &unused_groups);
  if (!groups_or.ok()) return groups_or.status().WithContext(bundle.path());
  auto groups = std::move(groups_or).value();
  for (PlannedGroup& g : groups) {
    for (PlannedWeight& pw : g.weights) {
      const WeightEntry& w = ws[pw.entry];
      pw.out = MapDtype(w.dtype);
      Result<QuantDtype> q = QuantFor(options.quantize, w.name, ws);
      if (!q.ok()) return q.status().WithContext(bundle.path());
      pw.quant = pw.out == OutDtype::kFloat32 ? *q : QuantDtype::kNone;
    }
  }
  std::vector<UnusedPattern> unused;
  FindUnusedQuantPatterns(options.quantize, ws, &unused);
  unused.insert(unused.end(), unused_groups.begin(), unused_groups.end());
  if (options.strict_patterns && !unused.empty()) {
    std::string m;
    for (const UnusedPattern& u : unused) m += (m.empty() ? "" : "; ") + UnusedPatternMessage(u);
    return Status::Config(bundle.path() + ": " + m +
                          " (an error with strict_patterns / --strict-patterns)");
  }
  uint64_t shard_count = 0;  // bounded before any shard is cut
  for (size_t gi = 0; gi < groups.size(); ++gi) {
    PlannedGroup& g = groups[gi];
    for (PlannedWeight& pw : g.weights) {
      const WeightEntry& w = ws[pw.entry];
      WD_ASSIGN_OR_RETURN(pw.encoded_bytes, EncodedBytes(bundle, w, pw.out, pw.quant));
      pw.offset = g.total_bytes;
      g.total_bytes += pw.encoded_bytes;
    }
    shard_count += g.total_bytes / options.shard_size + 1;
    if (shard_count > kMaxShards) {
      return Status::Bundle(bundle.path() + ": with shard_size " +
                            std::to_string(options.shard_size) + " this bundle needs more than " +
                            std::to_string(kMaxShards) +
                            " shard files (a browser fetches each one): raise shard_size");
    }
    g.shards = CutShards(g.total_bytes, options.shard_size, static_cast<int>(gi + 1));
  }
  Plan plan{
      .groups = std::move(groups), .hazard_split = false, .unused_patterns = std::move(unused)};
  plan.hazard_split = MitigateTfjsUniformShardHazard(plan.groups);
  return plan;
}

}  // namespace wd
