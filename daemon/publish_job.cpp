#include "daemon/publish_job.h"

#include <pwd.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "core/file_system.h"
#include "core/pipeline.h"
#include "core/publisher.h"
#include "core/s3_store.h"
#include "daemon/clock.h"
#include "daemon/human_text.h"

namespace wd {
namespace {

// What failed/<name>.error.txt adds when the fault is weightdrop's own.
constexpr const char* kInternalFaultNote =
    "weightdrop's own fault (an internal error or a crash), not a verdict on this bundle's "
    "content. It is safe to drop the bundle again after upgrading weightdrop; please report "
    "this file.";

// What failed/<name>.error.txt adds when weightdrop could not read the bundle.
std::string UnreadableNote(int attempts) {
  const uid_t uid = geteuid();
  std::string user = std::to_string(uid);
  std::vector<char> buf(4096);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
    user = std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")";
  }
  return "weightdrop could not read this bundle in " + std::to_string(attempts) +
         " attempts. It runs as user " + user +
         ": make the bundle (and, for a folder, everything in it) readable to that user, "
         "e.g. `chmod g+r` with the uploaders' group as its group (`chgrp`), or `chmod a+r`; "
         "then drop it again. A disk I/O error needs the disk looked at.";
}

// Publishes the bundle, or nothing when the job carries an error already.
// Anything thrown is a kInternal error naming it.
Status PublishClaimed(const Job& job, const DaemonTestHooks& hooks, Outcome* out) {
  if (!job.pre_error.ok()) return job.pre_error;
  CrashScope scope(job.claimed.path);
  return CatchInternal("publishing", job.claimed.path, [&]() -> Status {
    if (hooks.before_publish) hooks.before_publish(job.claimed.path);
    const std::string dropped = job.cfg.drop + "/" + job.claimed.name;
    PublishSettings s{.model = job.model,
                      .keep_versions = job.cfg.keep_versions,
                      .skip_if_unchanged = true,
                      .options = job.cfg.options,
                      .source_path = dropped,
                      .on_planned = [&](const Plan& plan) {
                        uint64_t bytes = 0;
                        size_t weights = 0;
                        for (const auto& g : plan.groups) {
                          bytes += g.total_bytes;
                          weights += g.weights.size();
                        }
                        job.progress->bytes_total.store(bytes);
                        spdlog::info("publishing {} as {} ({:.1f} MiB, {})", dropped, job.model,
                                     bytes / 1048576.0, Counted(weights, "weight", "weights"));
                      }};
    job.progress->started_ms.store(SteadyMs());
    auto progress = [&](const Progress& p) { job.progress->bytes_done.store(p.bytes_done); };
    std::shared_ptr<VersionStore> store = job.store;
    if (!store && IsS3Url(job.cfg.serve)) {
      return Status::Environment(job.cfg.serve + ": the object store could not be set up");
    }
    if (!store) store = NewLocalStore(DefaultFileSystem(), job.cfg.serve);
    WD_ASSIGN_OR_RETURN(BundlePublish r, PublishBundle(job.claimed.path, s, *store, progress));
    out->kind = r.result.unchanged ? Outcome::kUnchanged : Outcome::kPublished;
    out->version = r.result.version;
    out->version_dir = r.result.version_dir;
    out->warnings = r.result.warnings;
    for (const auto& g : r.plan.groups) out->bytes += g.total_bytes;
    return Status::Ok();
  });
}

// `given` with every mention of the bundle's processing/ path replaced by
// the path it was dropped as.
Status NamedAsDropped(const Job& job, const Status& given) {
  if (given.ok()) return given;
  std::string text = given.message();
  const std::string dropped = job.cfg.drop + "/" + job.claimed.name;
  for (size_t at = text.find(job.claimed.path); at != std::string::npos;
       at = text.find(job.claimed.path, at + dropped.size())) {
    text.replace(at, job.claimed.path.size(), dropped);
  }
  return Status::Error(given.kind(), text, given.sys_errno());
}

// True when the claimed bundle is no longer in processing/ (removed by
// hand): there is nothing left to retry or to quarantine.
bool Vanished(const Job& job) {
  struct stat st;
  return lstat(job.claimed.path.c_str(), &st) != 0 && errno == ENOENT;
}

}  // namespace

void SettleBundle(const Job& job, const Status& given, int bundle_retries, Outcome* out) {
  const Status error = NamedAsDropped(job, given);
  if (!error.ok() && Vanished(job)) {
    // Retrying would fail on the missing bundle for ever and hold the
    // model's queue: report it once and let the next bundle go.
    out->kind = Outcome::kFailed;
    out->error = job.cfg.drop + "/" + job.claimed.name +
                 ": was removed from .weightdrop/processing/ before it was published; nothing "
                 "was published from it (last error: " +
                 error.message() + ")";
    out->bundle_path.clear();
    const std::string claim_dir = job.claimed.path.substr(0, job.claimed.path.rfind('/'));
    if (!job.claimed.id.empty()) rmdir(claim_dir.c_str());  // only when empty
    return;
  }
  const bool unreadable = !error.ok() && error.kind() == ErrorKind::kUnreadable;
  if ((!error.ok() && error.kind() == ErrorKind::kEnvironment) ||
      (unreadable && job.attempts + 1 < bundle_retries)) {
    out->kind = Outcome::kRetry;
    out->unreadable = unreadable;
    out->error = error.message();
    out->bundle_path = job.claimed.path;
    return;
  }
  if (!error.ok()) {
    out->kind = Outcome::kFailed;
    out->error = error.message();
    const bool ours = error.kind() == ErrorKind::kInternal;
    auto moved = QuarantineBundle(job.cfg.drop, job.claimed, error.message(),
                                  ours         ? kInternalFaultNote
                                  : unreadable ? UnreadableNote(job.attempts + 1)
                                               : "");
    if (moved.ok()) {
      out->bundle_path = *moved;
    } else {
      out->kind = Outcome::kRetry;
      out->bundle_path = job.claimed.path;
      out->error =
          error.message() + "; and moving it to failed/ failed: " + moved.status().message();
    }
    return;
  }
  if (job.cfg.on_success == OnSuccess::kDelete) {
    Status d = DeleteBundle(job.cfg.drop, job.claimed);
    out->bundle_path = job.claimed.path;
    if (!d.ok()) out->warnings.push_back(d.message());
  } else {
    auto moved = ArchiveBundle(job.cfg.drop, job.claimed);
    out->bundle_path = moved.ok() ? *moved : job.claimed.path;
    if (!moved.ok()) out->warnings.push_back(moved.status().message());
  }
}

Outcome RunPublishJob(const Job& job, const DaemonTestHooks& hooks, const CrashHistory& crashes,
                      int bundle_retries) {
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  const Status error = PublishClaimed(job, hooks, &out);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Status settled = CatchInternal("moving", job.claimed.path, [&] {
    SettleBundle(job, error, bundle_retries, &out);
    return Status::Ok();
  });
  if (!settled.ok()) {  // out of memory even now: try again later, never strand
    out.kind = Outcome::kRetry;
    out.error = settled.message();
    out.bundle_path = job.claimed.path;
    return out;
  }
  if (out.kind == Outcome::kRetry) return out;
  // The bundle left processing/: earlier crashes on it stop counting.
  if (crashes.count(job.claimed.path) != 0) NoteCrashResolved(job.claimed.path);
  if (!job.crash_key.empty()) NoteCrashResolved(job.crash_key);
  return out;
}

}  // namespace wd
