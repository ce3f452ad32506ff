// DaemonConfig: the `weightdrop run` configuration (docs/configuration.md,
// "Daemon configuration") as plain structs with defaults written in: global
// settings, top-level pipeline `defaults`, and the watches, each with its own
// overrides and hooks.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "core/pipeline_options.h"
#include "core/s3_store.h"
#include "core/status.h"

namespace wd {

using Millis = std::chrono::milliseconds;

struct HookConfig {
  std::vector<std::string> on_publish;  // argv; empty = none
  std::vector<std::string> on_failure;  // argv; empty = none
  // A hook still running after this is killed (its whole process group).
  Millis timeout{30000};
};

enum class OnSuccess { kArchive, kDelete };

// Retention of an archive folder (done/ or failed/): entries older than
// max_age, or beyond the newest max_count, are removed. max_age 0 and
// max_count 0 both mean no limit of that kind.
struct ArchiveRetention {
  Millis max_age{30LL * 24 * 3600 * 1000};  // 30 days
  int max_count = 0;
};

struct WatchConfig {
  std::string drop;   // absolute drop folder
  std::string serve;  // absolute serve root, or s3://bucket/prefix
  // Model name template: {stem} (bundle name without .npz/.npy), {name}
  // (full file name), {drop} (drop folder's base name).
  std::string model = "{stem}";
  PipelineOptions options;  // defaults with this watch's overrides applied
  HookConfig hooks;
  // Quiet time before a bundle that did not arrive by rename is taken.
  // Longer is safer for slow writers; shorter publishes sooner.
  Millis settle{2000};
  // Full rescan period: covers NFS (no inotify) and anything missed.
  Millis rescan{30000};
  int keep_versions = 3;
  OnSuccess on_success = OnSuccess::kArchive;
  // How long bundles stay in drop/.weightdrop/done/ and failed/ (uploaders
  // cannot delete there): by age since they were moved in, or as the newest
  // `max_count`. Finite by default so the archives do not grow for ever.
  ArchiveRetention keep_done;
  ArchiveRetention keep_failed;
};

enum class LogFormat { kText, kJson };

struct DaemonConfig {
  std::string source;                             // the file it was read from, absolute
  std::string state_dir = "/var/lib/weightdrop";  // status.json, weightdrop.prom
  std::string log_level = "info";                 // trace, debug, info, warn, error
  LogFormat log_format = LogFormat::kText;
  // How long SIGTERM waits for in-flight publishes before exiting anyway.
  Millis shutdown_timeout{30000};
  // A bundle the daemon cannot read (permissions, an I/O error) is tried
  // this many times, the first retry after bundle_retry_delay and each next
  // one after twice the last (5 and 10s: 2.5 minutes), then goes to failed/.
  // Its model's later bundles wait meanwhile, to keep arrival order.
  // Publishes running at once (different models; one model is always one
  // at a time). Each holds a worker thread and up to ~40 MiB; the rest of
  // the pool stays free for scans, claims and status writes. 0 at parse
  // time means "the number of cores".
  int max_parallel_publishes = 0;
  int bundle_retries = 5;
  Millis bundle_retry_delay{10000};
  PipelineOptions defaults;
  // Settings of every s3:// serve target (docs/configuration.md, `s3`).
  S3StoreOptions s3;
  std::vector<WatchConfig> watches;
  // What is doubtful but not wrong ("file:line:col: ..."): patterns of two
  // quantize dtypes that share some names, a group that can get no weight.
  // check-config prints them; the daemon logs them at start and reload.
  std::vector<std::string> warnings;
};

// Parses a daemon config (docs/configuration.md, "Daemon configuration").
// Relative paths are resolved against the config file's folder and all paths
// are made absolute and lexically normal (symlinks are not resolved). Errors
// are kConfig "file:line:col: message".
Result<DaemonConfig> ParseDaemonConfig(const std::string& yaml_text, const std::string& file);
Result<DaemonConfig> LoadDaemonConfig(const std::string& path);

// True when the text's top level is a mapping with a key only a daemon
// config has (state_dir, watches, defaults, ...), or a key that is a typo of
// one (ClosestKey) and of no pipeline key: a daemon config rather than
// pipeline settings. Never throws; text that is not YAML gives false.
bool LooksLikeDaemonConfig(const std::string& yaml_text);

// "500ms", "2s", "1.5m", "1h", or a bare number of seconds ("30"); s, m and
// h take decimals that come to whole milliseconds. At most 8760h. Errors are
// kConfig "invalid duration '<text>': <why>".
Result<Millis> ParseDuration(const std::string& text);

// The model name for drop entry `entry_name` (a file or folder name) in
// `drop_dir`: {stem} is the name without .npz/.npy, {name} the whole name,
// {drop} the drop folder's base name. A malformed template is a kConfig
// error; a name that is not a valid model name (ValidateModelName) is a
// kBundle error naming the entry.
Result<std::string> ExpandModelTemplate(const std::string& tmpl, const std::string& entry_name,
                                        const std::string& drop_dir);

}  // namespace wd
