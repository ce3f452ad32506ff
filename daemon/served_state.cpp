#include "daemon/served_state.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/file_system.h"
#include "core/s3_client.h"

namespace wd {
namespace {

namespace fs = std::filesystem;

// "2026-11-28T18:00:00Z" (what publish.json's "created" holds) as Unix time.
std::optional<int64_t> ParseRfc3339(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

// The version S/M/current names and when it was published, from the tree.
void ReadServedModel(const std::string& serve, const std::string& model, ModelStatus& m) {
  const std::optional<int> v = ServedVersion(serve, model);
  if (!v) return;
  m.model = model;
  m.serve = serve;
  m.current_version = *v;
  const std::string dir = serve + "/" + model;
  Result<std::string> text =
      DefaultFileSystem().ReadFile(dir + "/" + std::to_string(*v) + "/publish.json", 1 << 20);
  if (!text.ok()) return;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("created") || !j["created"].is_string()) return;
  if (auto t = ParseRfc3339(j["created"].get<std::string>())) {
    if (!m.last_success_unix || *m.last_success_unix < *t) m.last_success_unix = *t;
  }
}

}  // namespace

std::optional<int> ServedVersion(const std::string& serve, const std::string& model) {
  FileSystem& files = DefaultFileSystem();
  const std::string dir = serve + "/" + model;
  Result<std::string> target = files.ReadLink(dir + "/current");
  if (!target.ok()) return std::nullopt;
  const std::string& v = *target;
  if (v.empty() || v.size() > 9 || v.find_first_not_of("0123456789") != std::string::npos ||
      !files.IsDirectory(dir + "/" + v)) {
    return std::nullopt;
  }
  return std::stoi(v);
}

std::map<std::string, ModelStatus> RestoreModelStatus(const DaemonConfig& cfg,
                                                      const std::string& previous_status) {
  std::map<std::string, ModelStatus> models;
  if (Result<std::string> text = DefaultFileSystem().ReadFile(previous_status, 64 << 20);
      text.ok()) {
    if (Result<DaemonStatus> before = StatusFromJson(*text, previous_status); before.ok()) {
      models = before->models;
    }
  }
  std::set<std::string> serves;
  for (const WatchConfig& w : cfg.watches) serves.insert(w.serve);
  // The tree decides what is current; models of serve roots no longer
  // watched are dropped.
  std::erase_if(models, [&](const auto& kv) { return serves.count(kv.second.serve) == 0; });
  // An object store is not read at start (no network before the loop
  // runs): its models keep what the last run recorded until a publish.
  for (auto& [key, m] : models) {
    if (!IsS3Url(m.serve)) m.current_version = 0;
  }
  for (const std::string& serve : serves) {
    if (IsS3Url(serve)) continue;
    std::error_code ec;
    for (fs::directory_iterator it(serve, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.' || !it->is_directory(ec) || it->is_symlink(ec)) continue;
      ModelStatus& m = models[serve + "/" + name];
      ReadServedModel(serve, name, m);
      if (m.model.empty()) models.erase(serve + "/" + name);  // not a model folder
    }
  }
  return models;
}

}  // namespace wd
