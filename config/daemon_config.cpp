#include "config/daemon_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string_view>
#include <thread>

#include "config/pipeline_yaml.h"
#include "core/bundle_formats.h"
#include "core/publisher.h"

namespace wd {
namespace {

namespace fs = std::filesystem;
using yaml::Describe;
using yaml::ErrorAt;
using yaml::KeyRule;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// --- durations ---------------------------------------------------------------

constexpr int64_t kMaxDurationMs = 8760LL * 3600 * 1000;

struct DurationUnit {
  const char* suffix;
  int64_t ms;
};
constexpr DurationUnit kDurationUnits[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000},
};

// Digits of `text` from *pos on (advancing *pos).
std::string TakeDigits(const std::string& text, size_t* pos) {
  const size_t start = *pos;
  while (*pos < text.size() && IsDigit(text[*pos])) ++*pos;
  return text.substr(start, *pos - start);
}

// --- paths -------------------------------------------------------------------

// `text` against `base_dir` (absolute), lexically normal, no trailing '/'.
std::string ResolvePath(const std::string& base_dir, const std::string& text) {
  std::string out = (fs::path(base_dir) / text).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// `file` made absolute against the working folder, lexically normal.
std::string AbsoluteFile(const std::string& file) {
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec);
  if (ec) abs = fs::path("/") / file;  // no working folder: best effort
  return abs.lexically_normal().string();
}

// `path` is `dir` or below it (both normalised by ResolvePath).
bool IsWithin(const std::string& path, const std::string& dir) {
  if (path == dir) return true;
  if (dir == "/") return true;
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
         path[dir.size()] == '/';
}

// --- templates -----------------------------------------------------------------

bool IsModelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '.' || c == '_' ||
         c == '-';
}

bool IsIdentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '_';
}

struct ModelVars {
  std::string stem, name, drop;
};

// Expands `tmpl` whose literal text must be model-name characters and whose
// placeholders must be {stem}, {name} or {drop}. kConfig errors.
Result<std::string> Substitute(const std::string& tmpl, const ModelVars& vars) {
  const std::string in = "model template '" + tmpl + "'";
  if (tmpl.empty()) return Status::Config(in + " is empty");
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if (c != '{') {
      if (IsModelChar(c)) {
        out += c;
        continue;
      }
      return Status::Config(in + ": '" + std::string(1, c) +
                            "' is not allowed (a model name holds letters, digits, '.', '_' "
                            "and '-'; placeholders are {stem}, {name} and {drop})");
    }
    const size_t close = tmpl.find('}', i);
    if (close == std::string::npos) return Status::Config(in + ": '{' without a closing '}'");
    const std::string key = tmpl.substr(i + 1, close - i - 1);
    if (key == "stem") {
      out += vars.stem;
    } else if (key == "name") {
      out += vars.name;
    } else if (key == "drop") {
      out += vars.drop;
    } else {
      return Status::Config(in + ": unknown placeholder '{" + key +
                            "}' (expected {stem}, {name} or {drop})");
    }
    i = close;
  }
  return out;
}

std::string BaseName(const std::string& dir) {
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return fs::path(d).filename().string();
}

// The placeholders a hook argv element may use (daemon contract: Hooks).
constexpr const char* kHookPlaceholders[] = {"model", "version", "dir",  "manifest",
                                             "url",   "bundle",  "error"};

// A "{word}" in `arg` that is not a hook placeholder (a typo), or "".
std::string UnknownHookPlaceholder(const std::string& arg) {
  for (size_t open = arg.find('{'); open != std::string::npos; open = arg.find('{', open + 1)) {
    size_t end = open + 1;
    while (end < arg.size() && IsIdentChar(arg[end])) ++end;
    if (end == open + 1 || end >= arg.size() || arg[end] != '}') continue;
    const std::string word = arg.substr(open + 1, end - open - 1);
    bool known = false;
    for (const char* p : kHookPlaceholders) known = known || word == p;
    if (!known) return "{" + word + "}";
  }
  return "";
}

// --- YAML: shared value parsers ------------------------------------------------

// A duration value of `key`, at least `min` (0, 1ms or 1s).
Status DurationValue(const std::string& file, const YAML::Node& value, const std::string& key,
                     Millis min, Millis* out) {
  if (!value.IsScalar()) {
    return ErrorAt(file, value,
                   key + ": expected a duration such as 500ms, 2s or 1m, got " + Describe(value));
  }
  Result<Millis> d = ParseDuration(value.Scalar());
  if (!d.ok()) return ErrorAt(file, value, key + ": " + d.status().message());
  if (*d < min) {
    const std::string bound = min == Millis(1) ? "more than 0" : "at least 1s";
    return ErrorAt(file, value, key + ": must be " + bound + ", got " + Describe(value));
  }
  *out = *d;
  return Status::Ok();
}

// A non-empty path resolved against `base_dir`.
Status PathValue(const std::string& file, const YAML::Node& value, const std::string& key,
                 const std::string& base_dir, std::string* out) {
  if (!value.IsScalar()) {
    return ErrorAt(file, value, key + ": expected a folder path, got " + Describe(value));
  }
  if (value.Scalar().empty()) return ErrorAt(file, value, key + ": empty path");
  *out = ResolvePath(base_dir, value.Scalar());
  return Status::Ok();
}

// One of `choices` (a "|"-free list); `*index` gets its position.
Status ChoiceValue(const std::string& file, const YAML::Node& value, const std::string& key,
                   std::span<const char* const> choices, size_t* index) {
  for (size_t i = 0; value.IsScalar() && i < choices.size(); ++i) {
    if (value.Scalar() == choices[i]) {
      *index = i;
      return Status::Ok();
    }
  }
  return ErrorAt(file, value,
                 key + ": expected " + yaml::KeyList(choices) + ", got " + Describe(value));
}

// --- YAML: hooks -----------------------------------------------------------------

Status HookArgv(const std::string& file, const YAML::Node& value, const std::string& key,
                std::vector<std::string>* out) {
  const std::string what = "hooks: " + key;
  if (!value.IsSequence() || value.size() == 0) {
    return ErrorAt(file, value,
                   what +
                       ": expected a non-empty list [program, args...] (run without a shell), "
                       "got " +
                       (value.IsSequence() ? std::string("an empty list") : Describe(value)));
  }
  std::vector<std::string> argv;
  for (const YAML::Node& item : value) {
    if (!item.IsScalar()) {
      return ErrorAt(file, item, what + ": expected a string, got " + Describe(item));
    }
    const std::string unknown = UnknownHookPlaceholder(item.Scalar());
    if (!unknown.empty()) {
      return ErrorAt(
          file, item,
          what + ": unknown placeholder '" + unknown +
              "' (expected {model}, {version}, {dir}, {manifest}, {url}, {bundle} or {error})");
    }
    argv.push_back(item.Scalar());
  }
  if (argv[0].empty()) return ErrorAt(file, value[0], what + ": the program is empty");
  *out = std::move(argv);
  return Status::Ok();
}

Status ApplyOnPublish(const std::string& file, const YAML::Node& value, HookConfig* out) {
  return HookArgv(file, value, "on_publish", &out->on_publish);
}

Status ApplyOnFailure(const std::string& file, const YAML::Node& value, HookConfig* out) {
  return HookArgv(file, value, "on_failure", &out->on_failure);
}

Status ApplyHookTimeout(const std::string& file, const YAML::Node& value, HookConfig* out) {
  return DurationValue(file, value, "hooks: timeout", Millis(1), &out->timeout);
}

constexpr KeyRule<HookConfig> kHookKeys[] = {
    {"on_publish", ApplyOnPublish},
    {"on_failure", ApplyOnFailure},
    {"timeout", ApplyHookTimeout},
};

// --- YAML: a watch ---------------------------------------------------------------

struct WatchDraft {
  WatchConfig config;
  std::string base_dir;
  YAML::Node node;  // the watch, for errors found after its keys
  // The values of these keys; null when absent (a key given has a value).
  YAML::Node drop, serve, model;
};

Status ApplyDrop(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  out->drop = value;
  return PathValue(file, value, "drop", out->base_dir, &out->config.drop);
}

Status ApplyServe(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  out->serve = value;
  if (value.IsScalar() && IsS3Url(value.Scalar())) {
    Result<S3Url> url = ParseS3Url(value.Scalar());
    if (!url.ok()) return ErrorAt(file, value, "serve: " + url.status().message());
    out->config.serve = "s3://" + url->bucket + (url->prefix.empty() ? "" : "/" + url->prefix);
    return Status::Ok();
  }
  return PathValue(file, value, "serve", out->base_dir, &out->config.serve);
}

Status ApplyModel(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  if (!value.IsScalar()) {
    return ErrorAt(file, value,
                   "model: expected a template such as {stem}, got " + Describe(value));
  }
  out->model = value;
  out->config.model = value.Scalar();
  return Status::Ok();
}

Status ApplySettle(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return DurationValue(file, value, "settle", Millis(0), &out->config.settle);
}

Status ApplyRescan(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return DurationValue(file, value, "rescan", Millis(1000), &out->config.rescan);
}

Status ApplyKeepVersions(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return yaml::WholeNumberValue(file, value, "keep_versions", 1, &out->config.keep_versions);
}

// keep_done / keep_failed: a duration with its unit (30d, 12h), a bare whole
// number (a count: keep the newest N), or "forever".
Status RetentionValue(const std::string& file, const YAML::Node& value, const std::string& key,
                      ArchiveRetention* out) {
  const std::string s = value.IsScalar() ? value.Scalar() : "";
  if (s == "forever") {
    *out = ArchiveRetention{.max_age = Millis(0), .max_count = 0};
    return Status::Ok();
  }
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    int count = 0;
    WD_RETURN_IF_ERROR(yaml::WholeNumberValue(file, value, key, 1, &count));
    *out = ArchiveRetention{.max_age = Millis(0), .max_count = count};
    return Status::Ok();
  }
  Millis age{0};
  if (!value.IsScalar()) {
    return ErrorAt(file, value,
                   key + ": expected an age such as 30d, a count such as 500, or forever, got " +
                       Describe(value));
  }
  WD_RETURN_IF_ERROR(DurationValue(file, value, key, Millis(1000), &age));
  *out = ArchiveRetention{.max_age = age, .max_count = 0};
  return Status::Ok();
}

Status ApplyKeepDone(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return RetentionValue(file, value, "keep_done", &out->config.keep_done);
}

Status ApplyKeepFailed(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return RetentionValue(file, value, "keep_failed", &out->config.keep_failed);
}

constexpr const char* kOnSuccessNames[] = {"archive", "delete"};

Status ApplyOnSuccess(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  size_t i = 0;
  WD_RETURN_IF_ERROR(ChoiceValue(file, value, "on_success", kOnSuccessNames, &i));
  out->config.on_success = i == 0 ? OnSuccess::kArchive : OnSuccess::kDelete;
  return Status::Ok();
}

Status ApplyHooks(const std::string& file, const YAML::Node& value, WatchDraft* out) {
  return yaml::ApplyKeys<HookConfig>(kHookKeys, file, value, "hooks", &out->config.hooks);
}

constexpr KeyRule<WatchDraft> kWatchKeys[] = {
    {"drop", ApplyDrop},
    {"serve", ApplyServe},
    {"model", ApplyModel},
    {"settle", ApplySettle},
    {"rescan", ApplyRescan},
    {"keep_versions", ApplyKeepVersions},
    {"keep_done", ApplyKeepDone},
    {"keep_failed", ApplyKeepFailed},
    {"on_success", ApplyOnSuccess},
    {"hooks", ApplyHooks},
};

Status UnknownWatchKey(const std::string& file, const YAML::Node& key_node,
                       const std::string& key) {
  std::vector<const char*> names;
  for (const KeyRule<WatchDraft>& r : kWatchKeys) names.push_back(r.key);
  for (const KeyRule<PipelineOptions>& r : yaml::PipelineKeys()) names.push_back(r.key);
  return ErrorAt(file, key_node, yaml::UnknownKeyMessage(key, "a watch", names));
}

// The watch's own keys and pipeline keys (over the defaults already in
// draft->config.options), in one mapping.
Status ApplyWatchKeys(const std::string& file, const std::string& what, WatchDraft* draft) {
  return yaml::VisitMapping(
      file, draft->node, what,
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) -> Status {
        const KeyRule<WatchDraft>* own = yaml::FindKey<WatchDraft>(kWatchKeys, key);
        const KeyRule<PipelineOptions>* pipe =
            own != nullptr ? nullptr : yaml::FindKey(yaml::PipelineKeys(), key);
        if (own == nullptr && pipe == nullptr) return UnknownWatchKey(file, key_node, key);
        if (value.IsNull()) return ErrorAt(file, key_node, key + ": no value");
        if (own != nullptr) return own->apply(file, value, draft);
        return pipe->apply(file, value, &draft->config.options);
      });
}

// The template is well formed and gives a valid name with this drop folder.
Status CheckModelTemplate(const std::string& file, const WatchDraft& w) {
  const YAML::Node& at = w.model.IsNull() ? w.node : w.model;
  const std::string& tmpl = w.config.model;
  Result<std::string> sample = Substitute(tmpl, {"x", "x.npz", BaseName(w.config.drop)});
  if (!sample.ok()) return ErrorAt(file, at, "model: " + sample.status().message());
  Status valid = ValidateModelName(*sample);
  if (!valid.ok()) {
    return ErrorAt(file, at,
                   "model: '" + tmpl + "' expands to an invalid name: " + valid.message());
  }
  return Status::Ok();
}

Result<WatchDraft> ParseWatch(const std::string& file, const YAML::Node& node, size_t number,
                              const std::string& base_dir, const PipelineOptions& defaults,
                              std::vector<std::string>* warnings) {
  const std::string what = "watch " + std::to_string(number);
  if (!node.IsMap()) {
    return ErrorAt(
        file, node,
        "watches: " + what + ": expected a mapping with drop and serve, got " + Describe(node));
  }
  WatchDraft draft;
  draft.base_dir = base_dir;
  draft.node = node;
  draft.config.options = defaults;
  WD_RETURN_IF_ERROR(ApplyWatchKeys(file, what, &draft));
  if (draft.drop.IsNull()) return ErrorAt(file, node, what + ": no 'drop' key");
  if (draft.serve.IsNull()) return ErrorAt(file, node, what + ": no 'serve' key");
  Status options = ValidatePipelineOptions(draft.config.options);
  if (!options.ok()) return ErrorAt(file, node, options.message());
  WD_RETURN_IF_ERROR(yaml::CheckPatterns(file, node, warnings));
  WD_RETURN_IF_ERROR(CheckModelTemplate(file, draft));
  return draft;
}

// --- YAML: cross-watch checks ------------------------------------------------------

std::string WatchName(size_t i, size_t self) {
  return i == self ? "this watch" : "watch " + std::to_string(i + 1);
}

// Drop folders are distinct and neither inside nor equal to a serve root,
// and no serve root is inside a drop folder: published files would be taken
// for new bundles.
Status CheckWatchFolders(const std::string& file, const std::vector<WatchDraft>& w) {
  for (size_t i = 0; i < w.size(); ++i) {
    const std::string me = "watch " + std::to_string(i + 1) + ": ";
    const std::string& drop = w[i].config.drop;
    const std::string& serve = w[i].config.serve;
    for (size_t j = 0; j < i; ++j) {
      if (w[j].config.drop == drop) {
        return ErrorAt(file, w[i].drop,
                       me + "drop: " + drop + " is already watched by " + WatchName(j, i));
      }
      // A fixed model name fed from two drop folders into one serve root:
      // each would replace the other's versions.
      const std::string& model = w[i].config.model;
      if (w[j].config.serve == serve && w[j].config.model == model &&
          model.find('{') == std::string::npos) {
        return ErrorAt(file, w[i].model.IsNull() ? w[i].node : w[i].model,
                       me + "model: '" + model + "' is also " + WatchName(j, i) +
                           "'s model in the same serve root " + serve +
                           "; give each watch its own model or serve root");
      }
    }
    for (size_t j = 0; j < w.size(); ++j) {
      const std::string& other_serve = w[j].config.serve;
      if (IsWithin(drop, other_serve)) {
        return ErrorAt(file, w[i].drop,
                       me + "drop: " + drop + (drop == other_serve ? " is " : " is inside ") +
                           WatchName(j, i) + "'s serve root " + other_serve);
      }
      const std::string& other_drop = w[j].config.drop;
      if (IsWithin(serve, other_drop)) {
        return ErrorAt(file, w[i].serve,
                       me + "serve: " + serve + " is inside " + WatchName(j, i) +
                           "'s drop folder " + other_drop);
      }
    }
  }
  return Status::Ok();
}

// --- YAML: object storage (the `s3` section) -----------------------------------------

Status StringValue(const std::string& file, const YAML::Node& value, const std::string& key,
                   std::string* out) {
  if (!value.IsScalar() || value.Scalar().empty()) {
    return ErrorAt(file, value,
                   "s3: " + key + ": expected a non-empty string, got " + Describe(value));
  }
  *out = value.Scalar();
  return Status::Ok();
}

struct S3Draft {
  S3StoreOptions* options;
  std::string base_dir;
};

Status ApplyS3Endpoint(const std::string& file, const YAML::Node& value, S3Draft* out) {
  WD_RETURN_IF_ERROR(StringValue(file, value, "endpoint", &out->options->s3.endpoint));
  S3Settings probe = out->options->s3;
  Result<S3Settings> resolved = ResolveSettings(probe);
  if (!resolved.ok()) return ErrorAt(file, value, "s3: endpoint: " + resolved.status().message());
  return Status::Ok();
}
Status ApplyS3Region(const std::string& file, const YAML::Node& value, S3Draft* out) {
  return StringValue(file, value, "region", &out->options->s3.region);
}
Status ApplyS3PathStyle(const std::string& file, const YAML::Node& value, S3Draft* out) {
  if (!yaml::IsBool(value, true) && !yaml::IsBool(value, false)) {
    return ErrorAt(file, value, "s3: path_style: expected true or false, got " + Describe(value));
  }
  out->options->s3.path_style = yaml::IsBool(value, true);
  return Status::Ok();
}
Status ApplyS3CredentialsFile(const std::string& file, const YAML::Node& value, S3Draft* out) {
  return PathValue(file, value, "s3: credentials_file", out->base_dir,
                   &out->options->s3.credentials_file);
}
Status ApplyS3Profile(const std::string& file, const YAML::Node& value, S3Draft* out) {
  return StringValue(file, value, "profile", &out->options->s3.profile);
}
Status ApplyS3PointerCache(const std::string& file, const YAML::Node& value, S3Draft* out) {
  return StringValue(file, value, "pointer_cache_control", &out->options->pointer_cache_control);
}
Status ApplyS3VersionCache(const std::string& file, const YAML::Node& value, S3Draft* out) {
  return StringValue(file, value, "version_cache_control", &out->options->version_cache_control);
}
Status ApplyS3ParallelUploads(const std::string& file, const YAML::Node& value, S3Draft* out) {
  WD_RETURN_IF_ERROR(yaml::WholeNumberValue(file, value, "s3: parallel_uploads", 1,
                                            &out->options->parallel_uploads));
  if (out->options->parallel_uploads > 32) {
    return ErrorAt(file, value, "s3: parallel_uploads: at most 32");
  }
  return Status::Ok();
}
Status ApplyS3PublicUrl(const std::string& file, const YAML::Node& value, S3Draft* out) {
  WD_RETURN_IF_ERROR(StringValue(file, value, "public_url", &out->options->public_url));
  std::string& u = out->options->public_url;
  if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
    return ErrorAt(file, value,
                   "s3: public_url: expected an http:// or https:// URL, got " + Describe(value));
  }
  while (u.size() > 8 && u.back() == '/') u.pop_back();
  return Status::Ok();
}

constexpr KeyRule<S3Draft> kS3Keys[] = {
    {"endpoint", ApplyS3Endpoint},
    {"region", ApplyS3Region},
    {"path_style", ApplyS3PathStyle},
    {"credentials_file", ApplyS3CredentialsFile},
    {"profile", ApplyS3Profile},
    {"pointer_cache_control", ApplyS3PointerCache},
    {"version_cache_control", ApplyS3VersionCache},
    {"parallel_uploads", ApplyS3ParallelUploads},
    {"public_url", ApplyS3PublicUrl},
};

// --- YAML: top level -----------------------------------------------------------------

struct TopDraft {
  DaemonConfig config;
  std::string base_dir;
  // Values of these keys, null when absent; defaults and watches are applied
  // after the other keys, in that order, wherever they are in the file.
  YAML::Node state_dir, defaults, watches;
};

Status ApplyStateDir(const std::string& file, const YAML::Node& value, TopDraft* out) {
  out->state_dir = value;
  return PathValue(file, value, "state_dir", out->base_dir, &out->config.state_dir);
}

constexpr const char* kLogLevels[] = {"trace", "debug", "info", "warn", "error"};
constexpr const char* kLogFormats[] = {"text", "json"};

Status ApplyLogLevel(const std::string& file, const YAML::Node& value, TopDraft* out) {
  size_t i = 0;
  WD_RETURN_IF_ERROR(ChoiceValue(file, value, "log_level", kLogLevels, &i));
  out->config.log_level = kLogLevels[i];
  return Status::Ok();
}

Status ApplyLogFormat(const std::string& file, const YAML::Node& value, TopDraft* out) {
  size_t i = 0;
  WD_RETURN_IF_ERROR(ChoiceValue(file, value, "log_format", kLogFormats, &i));
  out->config.log_format = i == 0 ? LogFormat::kText : LogFormat::kJson;
  return Status::Ok();
}

Status ApplyShutdownTimeout(const std::string& file, const YAML::Node& value, TopDraft* out) {
  return DurationValue(file, value, "shutdown_timeout", Millis(0), &out->config.shutdown_timeout);
}

Status ApplyMaxParallelPublishes(const std::string& file, const YAML::Node& value, TopDraft* out) {
  WD_RETURN_IF_ERROR(yaml::WholeNumberValue(file, value, "max_parallel_publishes", 1,
                                            &out->config.max_parallel_publishes));
  if (out->config.max_parallel_publishes > 12) {
    return ErrorAt(file, value,
                   "max_parallel_publishes: at most 12 (each publish holds a thread of its own "
                   "and up to ~40 MiB of buffers; more gains nothing on one disk)");
  }
  return Status::Ok();
}

Status ApplyBundleRetries(const std::string& file, const YAML::Node& value, TopDraft* out) {
  return yaml::WholeNumberValue(file, value, "bundle_retries", 1, &out->config.bundle_retries);
}

Status ApplyBundleRetryDelay(const std::string& file, const YAML::Node& value, TopDraft* out) {
  return DurationValue(file, value, "bundle_retry_delay", Millis(1),
                       &out->config.bundle_retry_delay);
}

Status ApplyS3(const std::string& file, const YAML::Node& value, TopDraft* out) {
  S3Draft draft{.options = &out->config.s3, .base_dir = out->base_dir};
  return yaml::ApplyKeys<S3Draft>(kS3Keys, file, value, "s3", &draft);
}

Status KeepDefaults(const std::string&, const YAML::Node& value, TopDraft* out) {
  out->defaults = value;
  return Status::Ok();
}

Status KeepWatches(const std::string&, const YAML::Node& value, TopDraft* out) {
  out->watches = value;
  return Status::Ok();
}

constexpr KeyRule<TopDraft> kTopKeys[] = {
    {"state_dir", ApplyStateDir},
    {"log_level", ApplyLogLevel},
    {"log_format", ApplyLogFormat},
    {"shutdown_timeout", ApplyShutdownTimeout},
    {"defaults", KeepDefaults},
    {"watches", KeepWatches},
    {"bundle_retries", ApplyBundleRetries},
    {"bundle_retry_delay", ApplyBundleRetryDelay},
    {"max_parallel_publishes", ApplyMaxParallelPublishes},
    {"s3", ApplyS3},
};

Status ApplyWatches(const std::string& file, const YAML::Node& root, TopDraft* top) {
  const YAML::Node& list = top->watches;
  if (list.IsNull()) {
    return ErrorAt(file, root, "no 'watches' key (a daemon config needs at least one watch)");
  }
  if (!list.IsSequence() || list.size() == 0) {
    return ErrorAt(file, list,
                   "watches: expected a non-empty list of watches, got " +
                       (list.IsSequence() ? std::string("an empty list") : Describe(list)));
  }
  std::vector<WatchDraft> drafts;
  for (const YAML::Node& item : list) {
    WD_ASSIGN_OR_RETURN(WatchDraft draft, ParseWatch(file, item, drafts.size() + 1, top->base_dir,
                                                     top->config.defaults, &top->config.warnings));
    drafts.push_back(std::move(draft));
  }
  WD_RETURN_IF_ERROR(CheckWatchFolders(file, drafts));
  // An object store target needs endpoint and credentials now, not at the
  // first bundle: a config error is the operator's, never the bundle's.
  for (size_t i = 0; i < drafts.size(); ++i) {
    if (!IsS3Url(drafts[i].config.serve)) continue;
    const std::string me =
        "watch " + std::to_string(i + 1) + ": serve: " + drafts[i].config.serve + ": ";
    Result<S3Settings> s = ResolveSettings(top->config.s3.s3);
    if (!s.ok()) return ErrorAt(file, drafts[i].serve, me + s.status().message());
    Result<S3Credentials> c = ResolveCredentials(top->config.s3.s3);
    if (!c.ok()) return ErrorAt(file, drafts[i].serve, me + c.status().message());
  }
  for (WatchDraft& d : drafts) top->config.watches.push_back(std::move(d.config));
  return Status::Ok();
}

// state_dir inside a drop folder would be taken for a bundle folder.
Status CheckStateDir(const std::string& file, const YAML::Node& root, const TopDraft& top) {
  const std::string& state = top.config.state_dir;
  for (size_t i = 0; i < top.config.watches.size(); ++i) {
    const std::string& drop = top.config.watches[i].drop;
    if (IsWithin(state, drop)) {
      const YAML::Node& at = top.state_dir.IsNull() ? root : top.state_dir;
      return ErrorAt(file, at,
                     "state_dir: " + state + " is inside watch " + std::to_string(i + 1) +
                         "'s drop folder " + drop);
    }
  }
  return Status::Ok();
}

std::vector<const char*> TopKeyNames() {
  std::vector<const char*> names;
  for (const KeyRule<TopDraft>& r : kTopKeys) names.push_back(r.key);
  return names;
}

std::vector<const char*> PipelineKeyNames() {
  std::vector<const char*> names;
  for (const KeyRule<PipelineOptions>& r : yaml::PipelineKeys()) names.push_back(r.key);
  return names;
}

// The top-level keys; a pipeline key there is told where it belongs.
Status ApplyTopKeys(const std::string& file, const YAML::Node& root, TopDraft* top) {
  return yaml::VisitMapping(
      file, root, "daemon config",
      [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) -> Status {
        const KeyRule<TopDraft>* rule = yaml::FindKey<TopDraft>(kTopKeys, key);
        if (rule == nullptr && yaml::FindKey(yaml::PipelineKeys(), key) != nullptr) {
          return ErrorAt(file, key_node,
                         "unknown key '" + key +
                             "' in daemon config: pipeline settings go under `defaults` or in "
                             "a watch");
        }
        if (rule == nullptr) {
          return ErrorAt(file, key_node,
                         yaml::UnknownKeyMessage(key, "daemon config", TopKeyNames()));
        }
        if (value.IsNull()) return ErrorAt(file, key_node, key + ": no value");
        return rule->apply(file, value, top);
      });
}

Result<DaemonConfig> ParseRoot(const YAML::Node& root, const std::string& file) {
  TopDraft top;
  top.config.source = AbsoluteFile(file);
  top.base_dir = fs::path(top.config.source).parent_path().string();
  WD_RETURN_IF_ERROR(ApplyTopKeys(file, root, &top));
  if (!top.defaults.IsNull()) {
    WD_RETURN_IF_ERROR(
        yaml::ApplyPipelineNode(file, top.defaults, &top.config.defaults, &top.config.warnings));
  }
  WD_RETURN_IF_ERROR(ApplyWatches(file, root, &top));
  WD_RETURN_IF_ERROR(CheckStateDir(file, root, top));
  if (top.config.max_parallel_publishes == 0) {
    const unsigned cores = std::thread::hardware_concurrency();
    top.config.max_parallel_publishes = static_cast<int>(std::clamp(cores, 1u, 12u));
  }
  return std::move(top.config);
}

}  // namespace

Result<Millis> ParseDuration(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Status::Config("invalid duration '" + text + "': " + why);
  };
  if (text.empty()) return bad("empty");
  if (text[0] == '-') return bad("must not be negative");
  size_t pos = 0;
  const std::string whole = TakeDigits(text, &pos);
  std::string frac;
  const bool dot = pos < text.size() && text[pos] == '.';
  if (dot) frac = TakeDigits(text, &++pos);
  if (whole.empty() || (dot && frac.empty())) {
    return bad("expected a number and a unit (ms, s, m, h or d), e.g. 500ms, 2s or 1.5m");
  }
  std::string_view unit = std::string_view(text).substr(pos);
  if (unit.size() > 1 && unit[0] == ' ') unit.remove_prefix(1);
  const DurationUnit* u = nullptr;
  for (const DurationUnit& d : kDurationUnits) u = (unit == d.suffix) ? &d : u;
  if (u == nullptr) {
    return bad("unknown unit '" + std::string(unit) +
               "' (expected ms, s, m, h or d; a bare number is seconds)");
  }
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  const size_t first = whole.find_first_not_of('0');
  if (first != std::string::npos && whole.size() - first > 12)
    return bad("too long (at most 8760h)");
  if (frac.size() > 9) return bad("finer than a millisecond");
  int64_t frac_ms = 0;
  if (!frac.empty()) {
    int64_t scale = 1;
    for (size_t i = 0; i < frac.size(); ++i) scale *= 10;
    const int64_t scaled = std::stoll(frac) * u->ms;
    if (scaled % scale != 0) return bad("finer than a millisecond");
    frac_ms = scaled / scale;
  }
  // Bounded before multiplying: 12 digits of days would overflow 64 bits.
  const int64_t count = std::stoll(whole);
  if (count > kMaxDurationMs / u->ms) return bad("too long (at most 8760h)");
  const int64_t ms = count * u->ms + frac_ms;
  if (ms > kMaxDurationMs) return bad("too long (at most 8760h)");
  return Millis(ms);
}

Result<std::string> ExpandModelTemplate(const std::string& tmpl, const std::string& entry_name,
                                        const std::string& drop_dir) {
  const std::string stem = BundleStem(entry_name);
  WD_ASSIGN_OR_RETURN(std::string model, Substitute(tmpl, {stem, entry_name, BaseName(drop_dir)}));
  Status valid = ValidateModelName(model);
  if (!valid.ok()) {
    return Status::Bundle(entry_name + ": " + valid.message() + " (from model template '" + tmpl +
                          "')");
  }
  return model;
}

bool LooksLikeDaemonConfig(const std::string& yaml_text) {
  try {
    Result<YAML::Node> root = yaml::LoadOneDocument(yaml_text, "");
    if (!root.ok() || !root->IsMap()) return false;
    const std::vector<const char*> top = TopKeyNames();
    const std::vector<const char*> pipeline = PipelineKeyNames();
    for (const auto& entry : *root) {
      const YAML::Node key = entry.first;
      if (!key.IsScalar()) continue;
      const std::string& k = key.Scalar();
      if (yaml::FindKey<TopDraft>(kTopKeys, k) != nullptr) return true;
      if (yaml::FindKey(yaml::PipelineKeys(), k) != nullptr) continue;
      if (yaml::ClosestKey(k, top) != nullptr && yaml::ClosestKey(k, pipeline) == nullptr) {
        return true;
      }
    }
  } catch (...) {
  }
  return false;
}

Result<DaemonConfig> ParseDaemonConfig(const std::string& yaml_text, const std::string& file) {
  return yaml::ParseDocument<DaemonConfig>(
      yaml_text, file, [&](const YAML::Node& root) { return ParseRoot(root, file); });
}

Result<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  WD_ASSIGN_OR_RETURN(std::string text, yaml::ReadConfigFile(path));
  return ParseDaemonConfig(text, path);
}

}  // namespace wd
