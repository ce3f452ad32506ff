#include "core/verifier.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>

#include "core/bundle.h"
#include "core/file_system.h"
#include "core/manifest.h"
#include "core/model_json.h"
#include "core/options_json.h"
#include "core/pipeline.h"
#include "core/plan.h"
#include "core/sha256.h"

namespace wd {
namespace {

struct Recorded {
  uint64_t bytes = 0;
  std::string sha256;
};

struct Target {
  std::string model_dir;
  std::string version_dir;
  std::string version;  // last path component
};

std::string StripSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

Result<Target> Resolve(const std::string& raw, FileSystem& fs) {
  const std::string target = StripSlashes(raw);
  if (fs.Exists(target + "/current")) {
    WD_ASSIGN_OR_RETURN(std::string v, fs.ReadLink(target + "/current"));
    return Target{target, target + "/" + v, v};
  }
  if (fs.Exists(target + "/weights_manifest.json")) {
    const size_t slash = target.rfind('/');
    const std::string parent = slash == std::string::npos ? "." : target.substr(0, slash);
    return Target{parent, target, target.substr(slash == std::string::npos ? 0 : slash + 1)};
  }
  return Status::Usage(target + ": neither a model folder (no 'current') nor a version folder " +
                       "(no weights_manifest.json)");
}

// sha256 and size of a regular file that is not a symlink.
Result<Recorded> HashShard(const std::string& path) {
  Sha256 h;
  WD_ASSIGN_OR_RETURN(uint64_t bytes, HashFileInto(path, h));
  return Recorded{bytes, h.HexDigest()};
}

// Bytes a manifest weight encodes to, or -1 when it depends on the data.
int64_t ExpectedBytes(const ManifestWeight& w) {
  if (w.dtype == "string") return -1;
  uint64_t n = 1;
  for (uint64_t d : w.shape) n *= d;
  if (w.quantization)
    return static_cast<int64_t>(n * (w.quantization->dtype == QuantDtype::kUint8 ? 1 : 2));
  const uint64_t size = w.dtype == "bool" ? 1 : w.dtype == "complex64" ? 8 : 4;
  return static_cast<int64_t>(n * size);
}

// Shards on disk against the manifest and publish.json's records.
void CheckShards(const Target& t, const Manifest& m, const std::map<std::string, Recorded>& rec,
                 VerifyReport& report, std::map<std::string, Recorded>& actual) {
  std::vector<uint64_t> sizes;
  for (size_t g = 0; g < m.size(); ++g) {
    uint64_t group_bytes = 0;
    for (const auto& p : m[g].paths) {
      if (p.empty() || p.find('/') != std::string::npos || p == "..") {
        report.problems.push_back(t.version_dir + "/weights_manifest.json: shard path '" + p +
                                  "' is not a plain file name in the version folder");
        continue;
      }
      auto h = HashShard(t.version_dir + "/" + p);
      if (!h.ok()) {
        report.problems.push_back(h.status().message());
        continue;
      }
      ++report.shards_checked;
      actual[p] = *h;
      sizes.push_back(h->bytes);
      group_bytes += h->bytes;
      auto it = rec.find(p);
      if (it != rec.end() && (it->second.bytes != h->bytes || it->second.sha256 != h->sha256)) {
        report.problems.push_back(t.version_dir + "/" + p + ": " + std::to_string(h->bytes) +
                                  " bytes, sha256 " + h->sha256 + ", but publish.json records " +
                                  std::to_string(it->second.bytes) + " bytes, sha256 " +
                                  it->second.sha256);
      }
    }
    int64_t expected = 0;
    for (const auto& w : m[g].weights) {
      const int64_t b = ExpectedBytes(w);
      if (b < 0) expected = -1;
      if (expected >= 0) expected += b;
    }
    if (expected >= 0 && static_cast<uint64_t>(expected) != group_bytes) {
      report.problems.push_back("group " + std::to_string(g + 1) + ": its weights encode to " +
                                std::to_string(expected) + " bytes but its shards hold " +
                                std::to_string(group_bytes));
    }
  }
  if (IsTfjsUniformShardHazard(sizes)) {
    report.warnings.push_back(
        t.version_dir +
        ": shard layout trips tfjs-core's uniform-shard lookup (every shard but "
        "the last is " +
        std::to_string(sizes[0]) + " bytes and the last is larger, " +
        std::to_string(sizes.back()) +
        "): tf.loadGraphModel / tf.io.http decode its weights "
        "wrongly. Republish with weightdrop, which cuts such layouts safely.");
  }
}

void CheckPointers(const Target& t, const Manifest& m, FileSystem& fs, VerifyReport& report) {
  auto cur = fs.ReadLink(t.model_dir + "/current");
  if (!cur.ok() || *cur != t.version) return;  // only the current version has pointers
  auto text = fs.ReadFile(t.model_dir + "/weights_manifest.json", 64u << 20);
  if (!text.ok()) {
    report.problems.push_back(text.status().message());
    return;
  }
  const std::string qualified = ManifestToJson(WithPathPrefix(m, t.version + "/"));
  auto pointer = ParseManifest(*text, t.model_dir + "/weights_manifest.json");
  if (!pointer.ok()) {
    report.problems.push_back(pointer.status().message());
  } else if (ManifestToJson(*pointer) != qualified) {
    report.problems.push_back(t.model_dir + "/weights_manifest.json does not match version " +
                              t.version + "'s manifest");
  }
  // model.json: the version's, byte for byte, with the qualified manifest.
  const std::string top = t.model_dir + "/model.json";
  const std::string inner = t.version_dir + "/model.json";
  if (!fs.Exists(inner)) {
    if (fs.Exists(top)) {
      report.problems.push_back(top + " exists but version " + t.version + " has no model.json");
    }
    return;
  }
  auto inner_text = fs.ReadFile(inner, kMaxModelJsonBytes);
  auto top_text = fs.ReadFile(top, kMaxModelJsonBytes);
  if (!inner_text.ok() || !top_text.ok()) {
    return report.problems.push_back((inner_text.ok() ? top_text : inner_text).status().message());
  }
  auto expected = ModelJsonWithManifest(*inner_text, qualified, inner);
  if (expected.ok() && *expected != *top_text) {
    report.problems.push_back(top + " is not version " + t.version +
                              "'s model.json with its manifest (keys, order or bytes differ)");
  }
}

// A version's model.json must be valid and name exactly its own manifest.
void CheckModelJsonFile(const Target& t, const Manifest& m, FileSystem& fs, VerifyReport& report) {
  const std::string path = t.version_dir + "/model.json";
  if (!fs.Exists(path)) return;
  auto text = fs.ReadFile(path, kMaxModelJsonBytes);
  if (!text.ok()) return report.problems.push_back(text.status().message());
  auto same = ModelJsonWithManifest(*text, ManifestToJson(m), path);
  if (!same.ok()) return report.problems.push_back(same.status().message());
  if (*same != *text) {
    report.problems.push_back(path + ": its weightsManifest is not the version's manifest");
  }
}

void CheckAgainst(const std::string& bundle_path, const nlohmann::json& record, const Manifest& m,
                  const std::map<std::string, Recorded>& actual, VerifyReport& report) {
  PipelineOptions options;
  if (record.contains("settings")) {
    auto o = OptionsFromJson(record["settings"]);
    if (!o.ok()) return report.problems.push_back(o.status().message());
    options = *o;
  }
  auto bundle = Bundle::Open(bundle_path);
  if (!bundle.ok()) return report.problems.push_back(bundle.status().message());
  auto plan = MakePlan(**bundle, options);
  if (!plan.ok()) return report.problems.push_back(plan.status().message());
  DiscardingStagingArea discard;
  auto staged = WriteShards(**bundle, *plan, discard, nullptr);
  if (!staged.ok()) return report.problems.push_back(staged.status().message());
  const std::string version_model = report.version_dir + "/model.json";
  const bool published_model = DefaultFileSystem().Exists(version_model);
  if ((*bundle)->model_json()) {
    auto original = ReadModelJson(*(*bundle)->model_json());
    auto expected = original.ok() ? ModelJsonWithManifest(*original, ManifestToJson(m),
                                                          *(*bundle)->model_json())
                                  : original;
    auto actual_text = DefaultFileSystem().ReadFile(version_model, kMaxModelJsonBytes);
    if (!expected.ok()) {
      report.problems.push_back(expected.status().message());
    } else if (!actual_text.ok() || *actual_text != *expected) {
      report.problems.push_back(version_model + " is not " + *(*bundle)->model_json() +
                                " with only weightsManifest filled in");
    }
  } else if (published_model) {
    report.problems.push_back(version_model + " exists but " + bundle_path + " has no model.json");
  }
  if (ManifestToJson(staged->manifest) != ManifestToJson(m)) {
    report.problems.push_back(bundle_path + " encodes to a different manifest than " +
                              report.version_dir + "'s");
  }
  for (const auto& s : staged->shards) {
    auto it = actual.find(s.name);
    if (it == actual.end() || it->second.sha256 != s.sha256) {
      report.problems.push_back(bundle_path + " encodes " + s.name + " differently than " +
                                report.version_dir + " holds");
    }
  }
}

}  // namespace

Result<VerifyReport> Verify(const std::string& target, const std::string& against) {
  FileSystem& fs = DefaultFileSystem();
  WD_ASSIGN_OR_RETURN(Target t, Resolve(target, fs));
  VerifyReport report;
  report.version_dir = t.version_dir;
  const std::string mpath = t.version_dir + "/weights_manifest.json";
  WD_ASSIGN_OR_RETURN(std::string text, fs.ReadFile(mpath, 64u << 20));
  WD_ASSIGN_OR_RETURN(Manifest m, ParseManifest(text, mpath));
  nlohmann::json record;
  std::map<std::string, Recorded> rec;
  if (auto pj = fs.ReadFile(t.version_dir + "/publish.json", 64u << 20); pj.ok()) {
    record = nlohmann::json::parse(*pj, nullptr, false);
    if (record.is_discarded() || !record.is_object() || !record.contains("shards")) {
      report.problems.push_back(t.version_dir +
                                "/publish.json: not a weightdrop provenance record");
    } else {
      for (const auto& s : record["shards"]) {
        if (s.is_object() && s.value("name", "") != "") {
          rec[s.value("name", "")] = {s.value("bytes", uint64_t{0}), s.value("sha256", "")};
        }
      }
    }
  }
  std::map<std::string, Recorded> actual;
  CheckShards(t, m, rec, report, actual);
  CheckPointers(t, m, fs, report);
  CheckModelJsonFile(t, m, fs, report);
  if (!against.empty()) CheckAgainst(against, record, m, actual, report);
  return report;
}

}  // namespace wd
