#include "core/version_files.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/model_json.h"
#include "core/sha256.h"

#ifndef WD_VERSION
#define WD_VERSION "0.0.0-dev"
#endif

namespace wd {

std::optional<int> ParseVersion(const std::string& s) {
  if (s.empty() || s.size() > 9 || s[0] < '1' || s[0] > '9') return std::nullopt;
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::string JoinInts(const std::vector<int>& vs) {
  if (vs.empty()) return "none";
  std::string out;
  for (int v : vs) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<std::string> ModelJsonWith(const std::string& topology, const Manifest& m,
                                  const std::string& where) {
  return ModelJsonWithManifest(topology, ManifestToJson(m), where);
}

std::string ProvenanceJson(const PublishRequest& req, int version, const StagedContent& content,
                           const std::string& manifest_json) {
  nlohmann::ordered_json j;
  j["model"] = req.model;
  j["version"] = version;
  j["source"] = {{"path", req.source_path}, {"sha256", req.source_sha256}};
  if (!req.source_fingerprint.empty()) j["source"]["fingerprint"] = req.source_fingerprint;
  if (!req.source_metadata.is_null()) j["source"]["metadata"] = req.source_metadata;
  j["config_digest"] = req.config_digest;
  if (!req.settings.is_null()) j["settings"] = req.settings;
  j["created"] = NowRfc3339();
  j["weightdrop_version"] = WD_VERSION;
  j["shards"] = nlohmann::ordered_json::array();
  for (const ShardFile& s : content.shards) {
    j["shards"].push_back({{"name", s.name}, {"bytes", s.bytes}, {"sha256", s.sha256}});
  }
  j["manifest_sha256"] = Sha256Hex(manifest_json);
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

bool RecordsSameSource(const std::string& text, const std::string& where, const PublishRequest& req,
                       std::vector<std::string>* warnings) {
  if (req.source_sha256.empty()) return false;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    return j.at("source").at("sha256") == req.source_sha256 &&
           j.at("config_digest") == req.config_digest;
  } catch (const nlohmann::json::exception& e) {
    warnings->push_back("unchanged check skipped: " + where + ": " + e.what());
    return false;
  }
}

std::optional<SourceRecord> SourceRecordOf(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("source") || !j["source"].is_object()) return std::nullopt;
  // A hand-edited record with a non-string value reads as not recorded.
  auto str = [](const nlohmann::json& o, const char* key) {
    const auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  return SourceRecord{.sha256 = str(j["source"], "sha256"),
                      .fingerprint = str(j["source"], "fingerprint"),
                      .config_digest = str(j, "config_digest")};
}

// `to` if it is a version folder, else the newest version older than current.
Result<int> PickRollbackTarget(const std::string& where, const std::vector<int>& versions,
                               std::optional<int> cur, std::optional<int> to) {
  if (to) {
    if (std::find(versions.begin(), versions.end(), *to) != versions.end()) return *to;
    return Status::Config(where + ": no version " + std::to_string(*to) +
                          " (versions: " + JoinInts(versions) + ")");
  }
  if (!cur) return Status::Config(where + ": nothing is current, so nothing to roll back");
  int target = 0;
  for (int v : versions) {
    if (v < *cur) target = v;
  }
  if (target != 0) return target;
  return Status::Config(where + ": no version older than current " + std::to_string(*cur) +
                        " (versions: " + JoinInts(versions) + ")");
}

}  // namespace wd
