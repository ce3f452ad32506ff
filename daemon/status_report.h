// StatusReport: what the daemon tells operators about itself — the state
// behind state_dir/status.json and the Prometheus text file
// state_dir/weightdrop.prom — and their renderings. Built on the loop
// thread; rendered and written on a worker.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace wd {

struct WatchStatus {
  std::string drop;
  std::string serve;
  size_t queued = 0;     // ready bundles waiting for their model's turn
  size_t in_flight = 0;  // publishes running now
  // Entries of the drop folder that are not bundles (each logged once with
  // why), by name.
  std::vector<std::string> ignored;
  // Bundles whose claim failed (not merely incomplete): "name: why".
  std::vector<std::string> unclaimable;
};

struct ModelStatus {
  std::string model;
  std::string serve;
  int current_version = 0;  // 0: none yet
  std::string last_result;  // "published", "unchanged", "failed", "retrying", "" (none yet)
  std::string last_error;
  std::string last_bundle;
  std::optional<int64_t> last_success_unix;  // seconds
  uint64_t publishes = 0;
  uint64_t failures = 0;
  uint64_t unchanged = 0;
  uint64_t bytes = 0;  // shard bytes published
};

// An object store serve target (s3://bucket/prefix): its client's counters
// since the daemon started.
struct StoreStatus {
  std::string target;
  uint64_t bytes_uploaded = 0;
  uint64_t requests = 0;
  uint64_t retries = 0;
  std::string last_error;
};

// A publish running now.
struct PublishInFlight {
  std::string bundle;  // as dropped: drop/<name>
  std::string model;
  uint64_t bytes_done = 0;
  uint64_t bytes_total = 0;  // 0 until planned
  double elapsed_seconds = 0;
};

// Upper bounds (seconds) of the publish duration histogram; +Inf implied.
inline const std::vector<double>& PublishDurationBuckets() {
  static const std::vector<double> b = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  return b;
}

struct DaemonStatus {
  int64_t pid = 0;
  int64_t started_unix = 0;
  std::string config;             // path
  std::string state = "running";  // "running", "reloading", "stopping", "stopped"
  int64_t stopped_unix = 0;       // when it stopped cleanly (state "stopped"); 0: not
  std::vector<WatchStatus> watches;
  std::map<std::string, ModelStatus> models;  // key "<serve>/<model>"
  std::vector<PublishInFlight> publishing;
  std::vector<StoreStatus> stores;
  // Models fed from more than one drop folder since start ("<serve>/<model>"
  // -> the folders): each replaces the other's versions, rarely on purpose.
  std::map<std::string, std::vector<std::string>> shared_models;
  // Publish durations: counts per bucket (non-cumulative; last = +Inf), sum.
  std::vector<uint64_t> duration_counts =
      std::vector<uint64_t>(PublishDurationBuckets().size() + 1);
  double duration_sum = 0;

  void RecordDuration(double seconds);
  size_t QueueDepth() const;  // sum of queued over watches
};

// status.json: pretty-printed, times as RFC 3339 UTC ("2026-11-28T18:00:00Z").
// The histogram is not part of it.
std::string StatusToJson(const DaemonStatus& s);
// Parses what StatusToJson wrote; missing fields keep their defaults, wrong
// types are kBundle errors naming `origin` and the field.
Result<DaemonStatus> StatusFromJson(const std::string& text, const std::string& origin);
std::string StatusToPrometheus(const DaemonStatus& s);
// A short one-line summary for sd_notify STATUS=.
std::string StatusLine(const DaemonStatus& s);
// Reads state_dir/status.json and renders it for a terminal.
Result<std::string> RenderStatusFile(const std::string& status_json_path);

}  // namespace wd
