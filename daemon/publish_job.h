// PublishJob: the worker side of one claimed bundle — publish it, then move
// it to done/ (or delete it), to failed/ with the reason, or leave it in
// processing/ for a retry. Pure worker code: no loop and no daemon state; the
// model queue decides what an Outcome means for the model's next bundle.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/daemon_config.h"
#include "core/status.h"
#include "core/version_store.h"
#include "daemon/crash_guard.h"
#include "daemon/daemon.h"
#include "daemon/drop_folder.h"

namespace wd {

// How far a running publish is: bytes_total once planned, bytes_done as
// shards are written. Written by the worker, read by the loop for status.
struct PublishProgress {
  std::atomic<uint64_t> bytes_done{0};
  std::atomic<uint64_t> bytes_total{0};
  std::atomic<int64_t> started_ms{0};  // steady clock
};

struct Job {
  WatchConfig cfg;
  Claimed claimed;
  std::string model;
  Status pre_error;  // not ok when the job must fail without publishing
  // A bundle quarantined for crashing the daemon: its path in the crash log
  // (processing/... or the drop folder), resolved once it is in failed/.
  std::string crash_key;
  // Where it publishes to (the watch's serve target); null: the local
  // serve folder cfg.serve.
  std::shared_ptr<VersionStore> store;
  int attempts = 0;        // retries so far
  bool recovered = false;  // found in processing/ at start
  std::shared_ptr<PublishProgress> progress = std::make_shared<PublishProgress>();
};

struct Outcome {
  enum Kind { kPublished, kUnchanged, kFailed, kRetry } kind = kFailed;
  int version = 0;
  std::string version_dir;
  std::string bundle_path;  // where the bundle is now
  std::string error;
  bool unreadable = false;  // a kRetry because this bundle could not be read
  uint64_t bytes = 0;
  double seconds = 0;
  std::vector<std::string> warnings;
};

// Worker thread. Publishes `job` (nothing when it carries a pre_error), then
// settles the bundle as SettleBundle says. Never throws: an exception is a
// kInternal fault of weightdrop's (failed/, never blamed on the bundle), and
// one that escapes even that leaves the bundle in processing/ for a retry.
Outcome RunPublishJob(const Job& job, const DaemonTestHooks& hooks, const CrashHistory& crashes,
                      int bundle_retries);

// Worker thread. Where the bundle goes after a publish that ended in `error`
// (docs/configuration.md, `bundle_retries`): done/ (or deleted) when it is ok; stays in
// processing/ (kRetry) for a fault of the machine or the serve side, and for
// an unreadable bundle until `bundle_retries` attempts in all; otherwise
// failed/, with the reason and whose fault it is. Messages name the bundle
// as it was dropped (drop/<name>), never its processing/ path.
void SettleBundle(const Job& job, const Status& error, int bundle_retries, Outcome* out);

}  // namespace wd
