#include "core/options_json.h"

namespace wd {
namespace {

using nlohmann::json;

Result<QuantDtype> DtypeFromJson(const json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    for (QuantDtype d : {QuantDtype::kUint8, QuantDtype::kUint16, QuantDtype::kFloat16}) {
      if (s == QuantDtypeName(d)) return d;
    }
    if (s == "none") return QuantDtype::kNone;
  }
  return Status::Bundle("recorded settings: bad quantization dtype " + j.dump());
}

Result<PipelineOptions> Parse(const json& j) {
  PipelineOptions o;
  o.shard_size = j.at("shard_size").get<uint64_t>();
  const json& g = j.at("groups");
  if (g.is_string()) {
    o.grouping.kind = Grouping::Kind::kSingle;
  } else if (g.is_object()) {
    o.grouping.kind = Grouping::Kind::kByPrefix;
    o.grouping.prefix_components = g.at("by_prefix").get<int>();
  } else {
    o.grouping.kind = Grouping::Kind::kPatterns;
    for (const json& r : g) {
      o.grouping.rules.push_back({.name = r.at("name").get<std::string>(),
                                  .match = r.at("match").get<std::vector<std::string>>()});
    }
  }
  o.grouping.unmatched_error = j.at("unmatched").get<std::string>() == "error";
  for (const json& p : j.at("quantize").at("patterns")) {
    WD_ASSIGN_OR_RETURN(QuantDtype d, DtypeFromJson(p.at(0)));
    o.quantize.patterns.emplace_back(d, p.at(1).get<std::vector<std::string>>());
  }
  WD_ASSIGN_OR_RETURN(o.quantize.fallthrough, DtypeFromJson(j.at("quantize").at("fallthrough")));
  o.strict_patterns = j.value("strict_patterns", false);  // absent before it existed
  return o;
}

}  // namespace

json OptionsToJson(const PipelineOptions& o) {
  json groups;
  switch (o.grouping.kind) {
    case Grouping::Kind::kSingle:
      groups = "single";
      break;
    case Grouping::Kind::kByPrefix:
      groups = {{"by_prefix", o.grouping.prefix_components}};
      break;
    case Grouping::Kind::kPatterns:
      groups = json::array();
      for (const auto& r : o.grouping.rules)
        groups.push_back({{"name", r.name}, {"match", r.match}});
      break;
  }
  json patterns = json::array();
  for (const auto& [d, p] : o.quantize.patterns) patterns.push_back({QuantDtypeName(d), p});
  return {{"shard_size", o.shard_size},
          {"groups", groups},
          {"unmatched", o.grouping.unmatched_error ? "error" : "last"},
          {"quantize",
           {{"patterns", patterns}, {"fallthrough", QuantDtypeName(o.quantize.fallthrough)}}},
          {"strict_patterns", o.strict_patterns}};
}

Result<PipelineOptions> OptionsFromJson(const json& j) {
  try {
    return Parse(j);
  } catch (const json::exception& e) {
    return Status::Bundle(std::string("recorded settings are malformed: ") + e.what());
  }
}

}  // namespace wd
