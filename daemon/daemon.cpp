#include "daemon/daemon.h"

#include <spdlog/spdlog.h>
#include <sys/inotify.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "config/daemon_config.h"
#include "core/cpu_kernels.h"
#include "core/file_system.h"
#include "core/pipeline.h"
#include "core/publisher.h"
#include "core/s3_store.h"
#include "daemon/clock.h"
#include "daemon/crash_guard.h"
#include "daemon/drop_folder.h"
#include "daemon/hook_runner.h"
#include "daemon/inotify_watcher.h"
#include "daemon/instance_lock.h"
#include "daemon/logging.h"
#include "daemon/model_queue.h"
#include "daemon/publish_job.h"
#include "daemon/publish_pool.h"
#include "daemon/readiness.h"
#include "daemon/sd_notify.h"
#include "daemon/served_state.h"
#include "daemon/status_report.h"
#include "daemon/work.h"

namespace wd {
namespace {

// A uv_timer_t owned by a unique_ptr-like wrapper: closing frees it.
class Timer {
 public:
  Timer(uv_loop_t* loop, std::function<void()> fn) : fn_(std::move(fn)) {
    t_ = new uv_timer_t;
    uv_timer_init(loop, t_);
    t_->data = this;
  }
  ~Timer() { Close(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  void Start(int64_t ms, int64_t repeat = 0) {
    if (t_ == nullptr) return;
    uv_timer_start(
        t_,
        [](uv_timer_t* h) {
          if (h->data != nullptr) static_cast<Timer*>(h->data)->fn_();
        },
        static_cast<uint64_t>(std::max<int64_t>(ms, 0)), static_cast<uint64_t>(repeat));
  }
  void Stop() {
    if (t_ != nullptr) uv_timer_stop(t_);
  }
  bool active() const { return t_ != nullptr && uv_is_active(reinterpret_cast<uv_handle_t*>(t_)); }
  void Close() {
    if (t_ == nullptr) return;
    t_->data = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(t_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    t_ = nullptr;
  }

 private:
  uv_timer_t* t_;
  std::function<void()> fn_;
};

// One drop folder being watched. Work on a worker refers to it by id: a
// watch removed by a reload is gone at once, and a completion that finds no
// watch under its id drops its result (a claim's job still runs).
struct Watch {
  Watch(uint64_t watch_id, const WatchConfig& c)
      : id(watch_id), cfg(c), readiness(c.settle.count(), SteadyMs) {}
  const uint64_t id;
  WatchConfig cfg;
  Readiness readiness;
  int root_wd = -1;
  bool absent = false;             // the drop folder is gone (removed or moved away)
  int64_t layout_missing_ms = -1;  // when a scan first found .weightdrop/ missing
  bool ready = false;              // start-up recovery done, watching
  bool attempted = false;          // recovery ran at least once (ready or not)
  bool scanning = false;
  bool scan_again = false;
  int64_t scan_started_ms = 0;  // of the scan running now
  std::unique_ptr<Timer> scan_timer, settle_timer, rescan_timer;
  bool pruning = false;
  int64_t last_prune_ms = 0;
  // Entries whose claim failed (not merely incomplete), by name: why. Each
  // is logged when its reason first appears, tried again at every rescan
  // and shown in status until it is claimed or gone.
  std::map<std::string, std::string> unclaimable;
};

// A bundle found at start: in processing/, or in the drop folder after it
// crashed the daemon while being opened (then claimed right away).
struct Recovered {
  Claimed claimed;
  Status poison;  // not ok: quarantine it without publishing
  std::string crash_key;
};

// What an inotify watch descriptor watches.
struct WdTarget {
  uint64_t watch = 0;
  std::string entry;  // "" for the drop folder itself
  std::string rel;    // folder inside the entry ("" for its root)
};

constexpr int64_t kScanDebounceMs = 20;

// How long .weightdrop/ must stay missing from a drop folder that was not
// removed before a scan restores it: an `rm -rf` of the drop folder deletes
// .weightdrop/ first, and restoring it then would make the rm fail.
constexpr int64_t kLayoutRestoreGraceMs = 1000;

class Daemon {
 public:
  Daemon(uv_loop_t* loop, std::string config_path, DaemonTestHooks hooks,
         std::shared_ptr<const CrashHistory> crashes)
      : loop_(loop),
        config_path_(std::move(config_path)),
        test_hooks_(std::move(hooks)),
        crashes_(std::move(crashes)),
        hooks_(loop),
        notifier_(SdNotifier::FromEnvironment()),
        pool_(loop) {}

  // REQUIRES: loop thread. Starts everything; READY=1 follows once every
  // watch has recovered and is watching.
  Status Start(DaemonConfig cfg);
  int exit_code() const { return exit_code_; }

 private:
  // --- configuration and watches
  void ApplyConfig(DaemonConfig cfg);
  void AddWatch(const WatchConfig& wc);
  Watch* FindWatch(uint64_t id);
  void Recover(uint64_t id);
  void RemoveWatch(Watch* w);
  void OnWatchRecovered(uint64_t id, Status st, std::vector<Recovered> found);
  void MaybeReady();

  // --- readiness (the decisions are Readiness's; this is the I/O)
  void OnInotify(const InotifyWatcher::Event& e);
  void ScheduleScan(Watch* w, int64_t delay_ms = kScanDebounceMs);
  void MaybePrune(Watch* w);
  // The store of a watch's serve target, one per target for the daemon's
  // life (connections and counters are kept across publishes).
  std::shared_ptr<VersionStore> StoreFor(const WatchConfig& cfg);
  std::string PointerUrlOf(const Job& job);
  void Scan(Watch* w);
  struct ScanOutcome;
  void OnScanned(uint64_t id, ScanOutcome o);
  void RefreshServed(const ScanOutcome& scanned);
  void WatchSubdirs(Watch* w, const std::string& entry, const std::vector<std::string>& subdirs);
  void Unwatch(Watch* w, const std::string& entry);
  void Evaluate(Watch* w);
  void Probe(Watch* w, const std::string& name);
  void OnProbed(uint64_t id, const std::string& name, const Status& opened);
  void Claim(Watch* w, const std::string& name);
  void NoteUnclaimable(uint64_t id, const WatchConfig& cfg, const std::string& name,
                       const Status& why);
  void OnClaimed(uint64_t id, const WatchConfig& cfg, const std::string& name,
                 const std::string& claim_id, const Result<Claimed>& claimed, bool is_link);

  // --- publishing (the order is ModelQueues's; the work is RunPublishJob's)
  void Enqueue(Job job);
  void Pump();
  void RunJob(const std::string& key);
  void OnJobDone(const std::string& key, Outcome o);
  void RunHook(const Job& job, const Outcome& o);

  // --- signals, status, shutdown
  void OnSignal(int signum);
  void Reload();
  void BeginStop();
  void MaybeFinishStop();
  void FinishStop();
  void StatusChanged();
  void WriteStatus();

  uv_loop_t* loop_;
  std::string config_path_;
  const DaemonTestHooks test_hooks_;
  // What crashed the daemon before this start (read-only; workers read it).
  const std::shared_ptr<const CrashHistory> crashes_;
  std::set<std::string> crash_keys_taken_;  // quarantined by a recovery already
  DaemonConfig cfg_;
  HookRunner hooks_;
  SdNotifier notifier_;
  PublishPool pool_;
  std::unique_ptr<InotifyWatcher> inotify_;
  std::map<uint64_t, std::unique_ptr<Watch>> watches_;
  std::map<std::string, std::shared_ptr<VersionStore>> stores_;  // by serve target
  uint64_t next_watch_id_ = 1;
  std::map<int, WdTarget> wds_;
  ModelQueues queues_;
  std::vector<uv_signal_t*> signals_;
  std::unique_ptr<Timer> watchdog_timer_, status_timer_, progress_timer_, stop_timer_, retry_timer_;
  DaemonStatus status_;
  bool announced_ready_ = false;
  bool reloading_ = false;       // RELOADING=1 sent, READY=1 not yet
  bool reload_loading_ = false;  // the config file is being read on a worker
  bool reload_again_ = false;    // a SIGHUP came meanwhile
  bool stopping_ = false;
  bool stopped_ = false;
  bool status_writing_ = false;
  bool status_dirty_ = false;
  // Read by workers: a claim that starts after shutdown began is skipped.
  std::shared_ptr<std::atomic<bool>> stop_flag_ = std::make_shared<std::atomic<bool>>(false);
  int exit_code_ = 0;
};

// ---------------------------------------------------------------- start-up

Status Daemon::Start(DaemonConfig cfg) {
  auto ino =
      InotifyWatcher::Create(loop_, [this](const InotifyWatcher::Event& e) { OnInotify(e); });
  if (!ino.ok()) return ino.status();
  inotify_ = std::move(ino).value();
  status_.pid = getpid();
  status_.started_unix = UnixSeconds();
  status_.config = config_path_;
  for (int signum : {SIGHUP, SIGTERM, SIGINT}) {
    auto* s = new uv_signal_t;
    uv_signal_init(loop_, s);
    s->data = this;
    uv_signal_start(
        s, [](uv_signal_t* h, int n) { static_cast<Daemon*>(h->data)->OnSignal(n); }, signum);
    signals_.push_back(s);
  }
  if (auto wd = notifier_.WatchdogInterval()) {
    watchdog_timer_ = std::make_unique<Timer>(loop_, [this] { notifier_.Notify("WATCHDOG=1"); });
    const auto ms = std::max<int64_t>(1, wd->count() / 1000);
    watchdog_timer_->Start(ms, ms);
  }
  status_timer_ = std::make_unique<Timer>(loop_, [this] { WriteStatus(); });
  progress_timer_ = std::make_unique<Timer>(loop_, [this] { StatusChanged(); });
  retry_timer_ = std::make_unique<Timer>(loop_, [this] { Pump(); });
  // Before the loop runs: what is served now, and the counters of the last
  // run, so status and metrics are right from the first write.
  status_.models = RestoreModelStatus(cfg, cfg.state_dir + "/status.json");
  ApplyConfig(std::move(cfg));
  return Status::Ok();
}

void Daemon::ApplyConfig(DaemonConfig cfg) {
  std::map<std::string, const WatchConfig*> wanted;
  for (const auto& wc : cfg.watches) wanted[wc.drop] = &wc;
  // Watches that went away stop watching; their queued jobs still finish.
  for (auto it = watches_.begin(); it != watches_.end();) {
    Watch* w = it->second.get();
    auto found = wanted.find(w->cfg.drop);
    if (found == wanted.end()) {
      spdlog::info("no longer watching {}", w->cfg.drop);
      RemoveWatch(w);
      it = watches_.erase(it);
      continue;
    }
    const auto old_rescan = w->cfg.rescan;
    w->cfg = *found->second;  // new settings for bundles claimed from now on
    w->readiness.set_settle(w->cfg.settle.count());
    if (w->ready && w->cfg.rescan != old_rescan) {
      w->rescan_timer->Start(w->cfg.rescan.count(), w->cfg.rescan.count());
    }
    wanted.erase(found);
    ++it;
  }
  // Object stores are set up anew with the (maybe changed) s3 settings;
  // running publishes keep theirs.
  std::erase_if(stores_, [](const auto& kv) { return IsS3Url(kv.first); });
  const bool reload = !cfg_.source.empty();
  cfg_ = std::move(cfg);
  pool_.Grow(cfg_.max_parallel_publishes);
  // A reload is how an operator says "fixed": bundles waiting out a backoff
  // are tried again now, not minutes later.
  if (reload) {
    queues_.RetryWaitingNow();
    Pump();
  }
  for (const auto& wc : cfg_.watches) {
    if (wanted.count(wc.drop) != 0) AddWatch(wc);
  }
  if (!std::filesystem::exists(cfg_.state_dir)) {
    std::error_code ec;
    std::filesystem::create_directories(cfg_.state_dir, ec);
  }
  StatusChanged();
  MaybeReady();
  Pump();  // a higher max_parallel_publishes may start more now
}

void Daemon::AddWatch(const WatchConfig& wc) {
  const uint64_t id = next_watch_id_++;
  auto w = std::make_unique<Watch>(id, wc);
  w->scan_timer = std::make_unique<Timer>(loop_, [this, id] {
    if (Watch* w = FindWatch(id)) Scan(w);
  });
  w->settle_timer = std::make_unique<Timer>(loop_, [this, id] {
    if (Watch* w = FindWatch(id)) Evaluate(w);
  });
  w->rescan_timer = std::make_unique<Timer>(loop_, [this, id] {
    Watch* w = FindWatch(id);
    if (w == nullptr) return;
    if (w->ready) {
      ScheduleScan(w, 0);
      MaybePrune(w);
    } else {
      Recover(id);
    }
  });
  watches_[id] = std::move(w);
  Recover(id);
}

Watch* Daemon::FindWatch(uint64_t id) {
  auto it = watches_.find(id);
  return it == watches_.end() ? nullptr : it->second.get();
}

// Runs on a worker thread. Pairs each bundle in processing/ with the crash
// guard's verdict on it, and claims the bundles of the drop folder that
// crashed the daemon while being opened, before any scan probes them again.
// `taken`: crash keys already quarantined by an earlier recovery (a watch
// removed and added again by reloads), whose name a new bundle may now have.
std::vector<Recovered> WithCrashVerdicts(const std::string& drop, const CrashHistory& crashes,
                                         const std::set<std::string>& taken,
                                         const std::vector<Claimed>& processing) {
  auto verdict = [](const CrashRecord& r, const char* doing) {
    return Status::Internal("weightdrop crashed (signal " + SignalName(r.last_signal) + ") " +
                            std::to_string(r.crashes) + " times while " + doing +
                            " this bundle; quarantined");
  };
  std::vector<Recovered> out;
  for (const Claimed& c : processing) {
    Recovered r{.claimed = c, .poison = Status::Ok(), .crash_key = ""};
    auto it = crashes.find(c.path);
    if (it != crashes.end() && it->second.crashes >= kQuarantineAfterCrashes) {
      r.poison = verdict(it->second, "publishing");
      r.crash_key = c.path;
    }
    out.push_back(std::move(r));
  }
  for (const auto& [path, rec] : crashes) {
    const std::filesystem::path p(path);
    if (rec.crashes < kQuarantineAfterCrashes || p.parent_path() != drop || taken.count(path)) {
      continue;
    }
    auto claimed = ClaimBundle(drop, p.filename(), NewClaimId());
    if (claimed.ok()) out.push_back({*claimed, verdict(rec, "opening"), path});
  }
  return out;
}

// Recovery needs the disk: layout, leftover staging, bundles in processing/.
void Daemon::Recover(uint64_t id) {
  const WatchConfig wc = FindWatch(id)->cfg;
  auto result = std::make_shared<std::pair<Status, std::vector<Recovered>>>();
  RunOnWorker(
      loop_, "recovering", wc.drop,
      [wc, result, crashes = crashes_, taken = crash_keys_taken_, store = StoreFor(wc)] {
        Status st = EnsureDropLayout(wc.drop);
        const bool remote = IsS3Url(wc.serve);
        if (st.ok() && !remote) {
          std::error_code ec;
          std::filesystem::create_directories(wc.serve, ec);
          if (ec) st = ErrnoStatus("cannot create " + wc.serve, ec.value());
        }
        if (st.ok() && store) {
          // An object store that cannot be reached now does not stop the
          // watch: its publishes wait and retry; leftovers go next time.
          Status left = store->RemoveLeftovers();
          if (!left.ok() && remote) {
            spdlog::warn("{}: leftovers of interrupted publishes not checked: {}", wc.serve,
                         left.message());
          } else {
            st = left;
          }
        }
        if (st.ok()) {
          auto p = ListProcessing(wc.drop);
          if (p.ok())
            result->second = WithCrashVerdicts(wc.drop, *crashes, taken, *p);
          else
            st = p.status();
        }
        result->first = st;
      },
      [this, id, result](const Status& fault) {
        if (!fault.ok()) result->first = fault;
        OnWatchRecovered(id, result->first, std::move(result->second));
      });
}

void Daemon::OnWatchRecovered(uint64_t id, Status st, std::vector<Recovered> found) {
  Watch* w = FindWatch(id);
  if (stopping_ || w == nullptr) return;
  w->attempted = true;
  if (!st.ok()) {
    spdlog::error("watch {}: {} (retrying in {}ms)", w->cfg.drop, st.message(),
                  w->cfg.rescan.count());
    w->rescan_timer->Start(w->cfg.rescan.count());
    MaybeReady();
    return;
  }
  for (auto& r : found) {
    const Claimed& c = r.claimed;
    if (!r.crash_key.empty()) crash_keys_taken_.insert(r.crash_key);
    auto crashed = crashes_->find(c.path);
    if (r.poison.ok() && crashed != crashes_->end()) {
      spdlog::warn(
          "recovering {}: it crashed the daemon ({}) {} time(s) before; quarantined "
          "after {}",
          c.path, SignalName(crashed->second.last_signal), crashed->second.crashes,
          kQuarantineAfterCrashes);
    } else if (r.poison.ok()) {
      spdlog::info("recovering {} from a previous run", c.path);
    } else {
      spdlog::error("{}: {}", r.crash_key, r.poison.message());
    }
    auto model = ExpandModelTemplate(w->cfg.model, c.name, w->cfg.drop);
    Job job{.cfg = w->cfg,
            .claimed = c,
            .model = model.ok() ? *model : "",
            .pre_error = r.poison,
            .crash_key = r.crash_key,
            .store = StoreFor(w->cfg),
            .attempts = 0,
            .recovered = true,
            .progress = std::make_shared<PublishProgress>()};
    if (!model.ok() && job.pre_error.ok()) job.pre_error = Status::Config(model.status().message());
    Enqueue(std::move(job));
  }
  auto wd = inotify_->Add(w->cfg.drop);
  if (wd.ok()) {
    w->root_wd = *wd;
    wds_[*wd] = {id, "", ""};
  } else {
    spdlog::warn("{}; relying on the periodic rescan", wd.status().message());
  }
  w->ready = true;
  spdlog::info("watching {} -> {} (model {}, settle {}ms, rescan {}ms)", w->cfg.drop, w->cfg.serve,
               w->cfg.model, w->cfg.settle.count(), w->cfg.rescan.count());
  w->rescan_timer->Start(w->cfg.rescan.count(), w->cfg.rescan.count());
  ScheduleScan(w, 0);
  MaybeReady();
}

void Daemon::MaybeReady() {
  if (stopping_) return;
  const bool all = std::all_of(watches_.begin(), watches_.end(),
                               [](const auto& w) { return w.second->attempted; });
  if (!all) return;
  if (!announced_ready_ || reloading_) {
    status_.state = "running";  // before STATUS=: READY=1 never says "reloading"
    notifier_.Notify("READY=1\nSTATUS=" + StatusLine(status_));
    announced_ready_ = true;
    reloading_ = false;
    StatusChanged();
  }
}

void Daemon::RemoveWatch(Watch* w) {
  for (auto it = wds_.begin(); it != wds_.end();) {
    if (it->second.watch == w->id) {
      inotify_->Remove(it->first);
      it = wds_.erase(it);
    } else {
      ++it;
    }
  }
  w->scan_timer->Close();
  w->settle_timer->Close();
  w->rescan_timer->Close();
  w->ready = false;
}

// ---------------------------------------------------------------- readiness

void Daemon::OnInotify(const InotifyWatcher::Event& e) {
  if (stopping_) return;
  if (e.mask & IN_Q_OVERFLOW) {
    spdlog::warn("inotify queue overflowed: rescanning every drop folder");
    for (auto& [id, w] : watches_) ScheduleScan(w.get(), 0);
    return;
  }
  auto it = wds_.find(e.wd);
  if (it == wds_.end()) return;
  const WdTarget t = it->second;
  Watch* w = FindWatch(t.watch);
  if (e.mask & IN_IGNORED) {
    wds_.erase(it);
    if (w != nullptr && t.entry.empty() && w->root_wd == e.wd) w->root_wd = -1;
    return;
  }
  if (w == nullptr) return;
  if (t.entry.empty()) {  // the drop folder itself
    if (e.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
      // A moved folder keeps its inotify watch: drop it, or its events would
      // be taken for the configured path. The next scan that finds the
      // folder again (made anew) watches it and restores .weightdrop/.
      spdlog::error("drop folder {} was removed or moved; watching for it to come back",
                    w->cfg.drop);
      inotify_->Remove(e.wd);
      wds_.erase(it);
      w->root_wd = -1;
      w->absent = true;
      return;
    }
    if (e.name.empty() || e.name == ".weightdrop") return;
    w->readiness.OnEntryEvent(e.name, (e.mask & IN_MOVED_TO) != 0,
                              (e.mask & (IN_MOVED_FROM | IN_DELETE)) != 0);
    ScheduleScan(w);
    return;
  }
  w->readiness.OnInsideEvent(t.entry, t.rel.empty() && e.name == ".ready" &&
                                          (e.mask & (IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE)));
  ScheduleScan(w);
}

void Daemon::ScheduleScan(Watch* w, int64_t delay_ms) {
  if (stopping_ || !w->ready) return;
  if (w->scanning) {
    w->scan_again = true;
    return;
  }
  if (!w->scan_timer->active() || delay_ms == 0) w->scan_timer->Start(delay_ms);
}

// Applies keep_done / keep_failed on a worker, from the rescan timer: at
// most every tenth of the shorter age (between 1 s and 1 h), so a large
// archive is not listed every few seconds.
std::string Daemon::PointerUrlOf(const Job& job) {
  std::shared_ptr<VersionStore> store = StoreFor(job.cfg);
  return store ? store->PointerUrl(job.model) : "";
}

std::shared_ptr<VersionStore> Daemon::StoreFor(const WatchConfig& cfg) {
  std::shared_ptr<VersionStore>& store = stores_[cfg.serve];
  if (store) return store;
  if (!IsS3Url(cfg.serve)) {
    store = NewLocalStore(DefaultFileSystem(), cfg.serve);
    return store;
  }
  // No network here: credentials and endpoint were checked with the config.
  auto s3 = NewS3Store(cfg.serve, cfg_.s3);
  if (!s3.ok()) {
    spdlog::error("{}: {}", cfg.serve, s3.status().message());
    stores_.erase(cfg.serve);
    return nullptr;
  }
  store = std::move(*s3);
  return store;
}

void Daemon::MaybePrune(Watch* w) {
  const WatchConfig& c = w->cfg;
  int64_t age = 3600 * 1000;
  for (const ArchiveRetention& k : {c.keep_done, c.keep_failed}) {
    if (k.max_age.count() > 0) age = std::min<int64_t>(age, k.max_age.count());
  }
  const int64_t every = std::clamp<int64_t>(age / 10, 1000, 3600 * 1000);
  const int64_t now = SteadyMs();
  if (w->absent || w->pruning || now - w->last_prune_ms < every) return;
  w->pruning = true;
  w->last_prune_ms = now;
  auto removed = std::make_shared<std::vector<std::string>>();
  RunOnWorker(
      loop_, "pruning the archives of", c.drop,
      [cfg = c, removed] {
        const int64_t now_ms = UnixSeconds() * 1000;
        std::error_code ec;
        if (!std::filesystem::is_directory(cfg.drop + "/.weightdrop", ec))
          return;  // gone: a scan says so
        for (const auto& [kind, keep] :
             {std::pair{"done", cfg.keep_done}, std::pair{"failed", cfg.keep_failed}}) {
          auto r = PruneArchive(cfg.drop, kind, keep, now_ms);
          if (!r.ok()) {
            spdlog::warn("cannot prune {}/.weightdrop/{}: {}", cfg.drop, kind,
                         r.status().message());
            continue;
          }
          for (const auto& n : *r) removed->push_back(std::string(kind) + "/" + n);
        }
      },
      [this, id = w->id, removed](const Status& fault) {
        if (!fault.ok()) spdlog::warn("{}", fault.message());
        for (const auto& n : *removed) spdlog::info("removed {} (past its retention)", n);
        if (Watch* live = FindWatch(id)) live->pruning = false;
      });
}

// What a scan found: the entries, or why there are none. A drop folder that
// is absent, or whose .weightdrop/ is missing for less than the grace, is
// not an error to log on every rescan: the first is logged once, the second
// is rescanned after the grace.
struct Daemon::ScanOutcome {
  Result<std::vector<DropEntry>> entries = Status::Environment("not scanned");
  bool absent = false;
  bool layout_missing = false;
  // The serve folder's models, as status had them when the scan began, and
  // the version their `current` names now (read on the worker).
  struct Served {
    std::string key, model;
    int had = 0;
    std::optional<int> now;
  };
  std::vector<Served> served;
};

void Daemon::Scan(Watch* w) {
  if (stopping_ || w->scanning) return;
  w->scanning = true;
  w->scan_started_ms = SteadyMs();
  const std::string drop = w->cfg.drop;
  // A drop folder made anew lacks .weightdrop/, without which no claim can
  // succeed: restore it. The drop folder itself is never recreated.
  const bool may_restore =
      w->root_wd < 0 || (w->layout_missing_ms >= 0 &&
                         w->scan_started_ms - w->layout_missing_ms >= kLayoutRestoreGraceMs);
  auto out = std::make_shared<ScanOutcome>();
  // Each scan also reads what the serve folder's models' `current` name, so
  // that a `weightdrop rollback` made by hand shows in status within a
  // rescan period (an object store is read only when publishing).
  const std::string serve = w->cfg.serve;
  if (!IsS3Url(serve)) {
    for (const auto& [key, m] : status_.models) {
      if (m.serve == serve) out->served.push_back({key, m.model, m.current_version, std::nullopt});
    }
  }
  RunOnWorker(
      loop_, "scanning", drop,
      [drop, serve, out, may_restore] {
        for (ScanOutcome::Served& s : out->served) s.now = ServedVersion(serve, s.model);
        std::error_code ec;
        if (!std::filesystem::is_directory(drop, ec)) {
          out->absent = true;
          return;
        }
        if (!std::filesystem::is_directory(drop + "/.weightdrop/processing", ec)) {
          if (!may_restore) {
            out->layout_missing = true;
            return;
          }
          if (Status st = EnsureDropLayout(drop); !st.ok()) {
            out->entries = st;
            out->absent = !std::filesystem::is_directory(drop, ec);
            return;
          }
          spdlog::info("{}: restored .weightdrop/ (the folder was made anew)", drop);
        }
        out->entries = ScanDrop(drop);
        if (!out->entries.ok()) out->absent = !std::filesystem::is_directory(drop, ec);
      },
      [this, id = w->id, out](const Status& fault) {
        if (!fault.ok()) {
          *out =
              ScanOutcome{.entries = fault, .absent = false, .layout_missing = false, .served = {}};
        }
        OnScanned(id, std::move(*out));
      });
}

void Daemon::OnScanned(uint64_t id, ScanOutcome o) {
  Watch* w = FindWatch(id);
  if (w == nullptr) return;
  w->scanning = false;
  if (!w->ready || stopping_) return;
  RefreshServed(o);
  if (o.absent) {
    if (!w->absent) {
      spdlog::error("drop folder {} does not exist; watching for it to come back", w->cfg.drop);
      w->absent = true;
    }
    return;
  }
  w->absent = false;
  if (o.layout_missing) {
    if (w->layout_missing_ms < 0) w->layout_missing_ms = w->scan_started_ms;
    ScheduleScan(w, kLayoutRestoreGraceMs);
    return;
  }
  w->layout_missing_ms = -1;
  Result<std::vector<DropEntry>>& r = o.entries;
  if (!r.ok()) {
    spdlog::error("cannot scan {}: {}", w->cfg.drop, r.status().message());
    return;
  }
  if (w->root_wd < 0) {  // its inotify watch was lost (removed, moved, or never set)
    auto wd = inotify_->Add(w->cfg.drop);
    if (wd.ok()) {
      w->root_wd = *wd;
      wds_[*wd] = {id, "", ""};
      spdlog::info("watching {} again", w->cfg.drop);
    }
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> subdirs;
  std::set<std::string> candidates;
  for (const DropEntry& e : *r) {
    if (IsBundleCandidate(e)) subdirs.emplace_back(e.name, e.subdirs);
    if (IsBundleCandidate(e)) candidates.insert(e.name);
  }
  const size_t unclaimable_before = w->unclaimable.size();
  std::erase_if(w->unclaimable, [&](const auto& u) { return candidates.count(u.first) == 0; });
  if (w->unclaimable.size() != unclaimable_before) StatusChanged();
  const Readiness::Scanned s = w->readiness.ApplyScan(std::move(*r), w->scan_started_ms);
  // An upload under a temporary name is the documented way in (info); any
  // other entry that is not a bundle is somebody's mistake (warning).
  for (const auto& [entry, why] : s.first_ignored) {
    spdlog::log(IsUploadInProgress(entry) ? spdlog::level::info : spdlog::level::warn,
                "{}/{}: {} (ignored)", w->cfg.drop, entry.name, why);
  }
  for (const auto& name : s.gone) Unwatch(w, name);
  for (const auto& [name, dirs] : subdirs) WatchSubdirs(w, name, dirs);
  if (s.ignored_changed) StatusChanged();
  if (w->scan_again) {
    w->scan_again = false;
    ScheduleScan(w);
  }
  Evaluate(w);
}

// A model whose `current` names another version than status says, while no
// publish of ours changed it since the read began: someone else moved it
// (a rollback, a publish by hand).
void Daemon::RefreshServed(const ScanOutcome& scanned) {
  bool changed = false;
  for (const ScanOutcome::Served& s : scanned.served) {
    auto it = status_.models.find(s.key);
    if (!s.now || *s.now == s.had || it == status_.models.end() ||
        it->second.current_version != s.had) {
      continue;
    }
    spdlog::info("{}: current is version {} (was {}): changed outside this daemon", s.key, *s.now,
                 s.had);
    it->second.current_version = *s.now;
    changed = true;
  }
  if (changed) StatusChanged();
}

void Daemon::WatchSubdirs(Watch* w, const std::string& entry,
                          const std::vector<std::string>& subdirs) {
  Candidate* c = w->readiness.Find(entry);
  if (c == nullptr) return;
  std::vector<std::string> all = subdirs;
  all.push_back("");  // the entry folder itself (for a folder bundle)
  for (const auto& rel : all) {
    if (c->subdirs.count(rel) != 0) continue;
    const std::string path = w->cfg.drop + "/" + entry + (rel.empty() ? "" : "/" + rel);
    if (rel.empty() && !std::filesystem::is_directory(std::filesystem::symlink_status(path))) {
      continue;
    }
    auto wd = inotify_->Add(path);
    if (!wd.ok()) continue;
    wds_[*wd] = {w->id, entry, rel};
    c->subdirs.insert(rel);
  }
}

void Daemon::Unwatch(Watch* w, const std::string& entry) {
  for (auto it = wds_.begin(); it != wds_.end();) {
    if (it->second.watch == w->id && it->second.entry == entry) {
      inotify_->Remove(it->first);
      it = wds_.erase(it);
    } else {
      ++it;
    }
  }
  if (Candidate* c = w->readiness.Find(entry)) c->subdirs.clear();
}

void Daemon::Evaluate(Watch* w) {
  if (stopping_ || !w->ready) return;
  const Readiness::Due due = w->readiness.Evaluate();
  for (const auto& n : due.claim) Claim(w, n);
  for (const auto& n : due.probe) Probe(w, n);
  if (due.next_in_ms >= 0) w->settle_timer->Start(due.next_in_ms + 1);
}

// A settled bundle is opened once before it is claimed: a file still being
// written (zip without its central directory, .npy shorter than its header)
// is "not yet complete" and stays where it is.
void Daemon::Probe(Watch* w, const std::string& name) {
  const std::string path = w->cfg.drop + "/" + name;
  auto st = std::make_shared<Status>();
  RunOnWorker(
      loop_, "opening", path,
      [path, st, crashes = crashes_] {
        {
          CrashScope scope(path);  // a bundle that crashes Open is quarantined at start
          auto b = Bundle::Open(path);
          *st = b.ok() ? Status::Ok() : b.status();
        }
        if (crashes->count(path) != 0) NoteCrashResolved(path);
      },
      [this, id = w->id, name, st](const Status& fault) {
        // An internal error is not "incomplete": the bundle is claimed and
        // its publish reports (and quarantines) whatever fails.
        OnProbed(id, name, fault.ok() ? *st : fault);
      });
}

void Daemon::OnProbed(uint64_t id, const std::string& name, const Status& opened) {
  Watch* w = FindWatch(id);
  if (w == nullptr || !w->ready || stopping_) return;
  bool gave_up = false;
  switch (w->readiness.OnProbed(name, opened, &gave_up)) {
    case Readiness::AfterProbe::kGone:
      return;
    case Readiness::AfterProbe::kWait:
      spdlog::debug("{}: not yet complete ({})", name, opened.message());
      w->settle_timer->Start(w->cfg.settle.count());
      return;
    case Readiness::AfterProbe::kClaimable:
      if (gave_up) {
        spdlog::warn("{}: still incomplete after {}s without change: failing it", name,
                     std::max<int64_t>(30000, 10 * w->cfg.settle.count()) / 1000);
      }
      Evaluate(w);  // claims it in its turn, with whatever it held back
      return;
  }
}

void Daemon::Claim(Watch* w, const std::string& name) {
  Unwatch(w, name);
  const WatchConfig cfg = w->cfg;
  // The id is taken here, on the loop, in arrival order; claims finish on
  // workers in any order and the queue sorts them back by id.
  const std::string claim_id = NewClaimId();
  queues_.ClaimStarted(claim_id);
  auto out = std::make_shared<Result<Claimed>>(Status::Incomplete("not claimed"));
  auto is_link = std::make_shared<bool>(false);
  RunOnWorker(
      loop_, "claiming", cfg.drop + "/" + name,
      [cfg, name, claim_id, out, is_link, stop = stop_flag_] {
        if (stop->load()) return;  // shutting down: leave it in the drop folder
        std::error_code ec;
        if (std::filesystem::is_symlink(cfg.drop + "/" + name, ec)) {
          *is_link = true;
          return;
        }
        *out = ClaimBundle(cfg.drop, name, claim_id);
      },
      [this, id = w->id, cfg, name, claim_id, out, is_link](const Status& fault) {
        if (!fault.ok()) *out = fault;
        OnClaimed(id, cfg, name, claim_id, *out, *is_link);
      });
}

// A claim that failed for a reason other than an incomplete bundle (most
// often permissions: moving a folder bundle needs write permission on it).
// The bundle stays where it is and is tried again at every rescan; the
// reason is logged when it first appears, not at every rescan.
void Daemon::NoteUnclaimable(uint64_t id, const WatchConfig& cfg, const std::string& name,
                             const Status& why) {
  Watch* w = FindWatch(id);
  if (w != nullptr) {
    auto [it, fresh] = w->unclaimable.try_emplace(name, why.message());
    if (!fresh && it->second == why.message()) return;
    it->second = why.message();
    StatusChanged();
  }
  spdlog::error(
      "cannot claim {}/{}: {}; it stays in the drop folder and is tried again at every rescan "
      "(weightdrop moves a bundle by renaming it: its user needs write permission on {} and, "
      "for a folder bundle, on the folder itself)",
      cfg.drop, name, why.message(), cfg.drop);
}

void Daemon::OnClaimed(uint64_t id, const WatchConfig& cfg, const std::string& name,
                       const std::string& claim_id, const Result<Claimed>& claimed, bool is_link) {
  queues_.ClaimFinished(claim_id);
  if (Watch* w = FindWatch(id)) w->readiness.Forget(name);
  if (is_link) {
    spdlog::warn("{}/{}: is a symbolic link; weightdrop never follows links (ignored)", cfg.drop,
                 name);
  } else if (!claimed.ok()) {
    if (claimed.status().kind() != ErrorKind::kIncomplete)
      NoteUnclaimable(id, cfg, name, claimed.status());
  } else {
    if (Watch* w = FindWatch(id); w != nullptr && w->unclaimable.erase(name) != 0) StatusChanged();
    spdlog::info("claimed {}", claimed->path);
    if (!claimed->warning.empty()) spdlog::warn("{}", claimed->warning);
    auto model = ExpandModelTemplate(cfg.model, name, cfg.drop);
    Enqueue(Job{.cfg = cfg,
                .claimed = *claimed,
                .model = model.ok() ? *model : "",
                .pre_error = model.ok() ? Status::Ok() : Status::Config(model.status().message()),
                .crash_key = "",
                .store = StoreFor(cfg),
                .attempts = 0,
                .recovered = false,
                .progress = std::make_shared<PublishProgress>()});
  }
  Pump();  // queues held back for this claim may go now
}

// ---------------------------------------------------------------- publishing

void Daemon::Enqueue(Job job) {
  const std::string key = QueueKey(job);
  const std::string model = job.model, drop = job.cfg.drop, serve = job.cfg.serve;
  const std::vector<std::string> shared = queues_.Enqueue(std::move(job));
  // One model fed from two drop folders (a template such as {stem} shared by
  // two watches on one serve root): legal, but each replaces the other's
  // versions. Told once per folder, and shown in status.
  if (!shared.empty()) {
    spdlog::warn(
        "model {} in {} is now fed by {} drop folders ({} and {}): each replaces "
        "the other's versions",
        model, serve, shared.size(), shared.front(), drop);
    status_.shared_models[key] = shared;
  }
  StatusChanged();
  Pump();
}

// Starts what may start: a free publish slot goes to the model whose next
// bundle was claimed first. Re-arms the retry timer for models in backoff.
void Daemon::Pump() {
  if (stopping_) return;
  const int64_t now = SteadyMs();
  const std::vector<std::string> start = queues_.TakeStartable(now, cfg_.max_parallel_publishes);
  for (const auto& key : start) RunJob(key);
  if (!start.empty()) StatusChanged();
  if (auto at = queues_.NextRetryAt(now)) {
    retry_timer_->Start(*at - now);
  } else {
    retry_timer_->Stop();
  }
}

// Publishes the job at the front of `key`'s queue on a publish thread, then
// moves the bundle to done/ (or deletes it) or to failed/: all disk work off
// the loop.
void Daemon::RunJob(const std::string& key) {
  Job job = queues_.queues().at(key).jobs.front();
  // The store as configured now: a retry after a reload that fixed the
  // object store's settings (credentials, endpoint) uses the new ones.
  job.store = StoreFor(job.cfg);
  auto out = std::make_shared<Outcome>();
  pool_.Submit(
      "publishing", job.claimed.path,
      [job, out, hooks = test_hooks_, crashes = crashes_, retries = cfg_.bundle_retries] {
        *out = RunPublishJob(job, hooks, *crashes, retries);
      },
      [this, key, path = job.claimed.path, out](const Status& fault) {
        if (!fault.ok()) {  // the guards inside did not hold: retry, never strand
          out->kind = Outcome::kRetry;
          out->error = fault.message();
          out->bundle_path = path;
        }
        OnJobDone(key, std::move(*out));
      });
}

void Daemon::OnJobDone(const std::string& key, Outcome o) {
  ModelQueues::Finished f = queues_.Finish(key, o, SteadyMs(), cfg_.bundle_retry_delay.count());
  const Job& job = f.job;
  ModelStatus& m = status_.models[key];
  m.model = job.model;
  m.serve = job.cfg.serve;
  m.last_bundle = job.claimed.name;
  for (const auto& w : o.warnings) spdlog::warn("{}: {}", key, w);
  switch (o.kind) {
    case Outcome::kPublished:
      spdlog::info("published {} version {} from {} ({} bytes, {:.3f}s) -> {}", job.model,
                   o.version, job.claimed.name, o.bytes, o.seconds, o.version_dir);
      ++m.publishes;
      m.bytes += o.bytes;
      status_.RecordDuration(o.seconds);
      m.last_result = "published";
      break;
    case Outcome::kUnchanged:
      spdlog::info("{} unchanged: {} is identical to the bundle version {} came from", job.model,
                   job.claimed.name, o.version);
      ++m.unchanged;
      m.last_result = "unchanged";
      break;
    case Outcome::kFailed:
      if (o.bundle_path.empty()) {
        spdlog::error("failed {}: {}", job.claimed.name, o.error);
      } else {
        spdlog::error("failed {}: {} (moved to {})", job.claimed.name, o.error, o.bundle_path);
      }
      ++m.failures;
      m.last_result = "failed";
      m.last_error = o.error;
      break;
    case Outcome::kRetry:
      if (o.unreadable) {
        spdlog::warn("cannot read {} (attempt {} of {}), trying again in {:.1f}s: {}",
                     job.claimed.name, job.attempts, cfg_.bundle_retries, f.backoff_ms / 1000.0,
                     o.error);
      } else {
        spdlog::warn("retrying {} in {:.1f}s (attempt {}): {}",
                     job.cfg.drop + "/" + job.claimed.name, f.backoff_ms / 1000.0, job.attempts,
                     o.error);
      }
      m.last_result = "retrying";
      m.last_error = o.error;
      break;
  }
  if (o.kind == Outcome::kPublished || o.kind == Outcome::kUnchanged) {
    m.current_version = o.version;
    m.last_success_unix = UnixSeconds();
    m.last_error.clear();
  }
  if (!f.retry) RunHook(job, o);
  StatusChanged();
  Pump();
  MaybeFinishStop();
}

void Daemon::RunHook(const Job& job, const Outcome& o) {
  const bool failed = o.kind == Outcome::kFailed;
  if (o.kind == Outcome::kUnchanged) return;
  const auto& argv = failed ? job.cfg.hooks.on_failure : job.cfg.hooks.on_publish;
  // Also while stopping: the version is live, so the model server must be
  // told; shutdown waits for running hooks (bounded by shutdown_timeout).
  if (argv.empty() || stopped_) return;
  HookEvent e{.event = failed ? "failure" : "publish",
              .vars = {{"model", job.model},
                       {"version", failed ? "" : std::to_string(o.version)},
                       {"dir", o.version_dir},
                       {"manifest",
                        failed ? "" : job.cfg.serve + "/" + job.model + "/weights_manifest.json"},
                       {"url", failed ? "" : PointerUrlOf(job)},
                       {"bundle", o.bundle_path},
                       {"error", o.error}}};
  hooks_.Run(argv, e, job.cfg.hooks.timeout, [this](int) { MaybeFinishStop(); });
}

// ---------------------------------------------------------------- signals

void Daemon::OnSignal(int signum) {
  if (signum == SIGHUP) {
    if (!stopping_) Reload();
    return;
  }
  if (stopping_) {
    if (signum == SIGINT) {
      spdlog::warn("second interrupt: exiting now; unfinished bundles stay in processing/");
      spdlog::default_logger()->flush();
      std::_Exit(1);
    }
    return;
  }
  spdlog::info("received {}: finishing in-flight publishes (up to {}s), taking no new work",
               signum == SIGTERM ? "SIGTERM" : "SIGINT", cfg_.shutdown_timeout.count() / 1000.0);
  BeginStop();
}

void Daemon::Reload() {
  if (reload_loading_) {  // a SIGHUP while the file is read: read it again after
    reload_again_ = true;
    return;
  }
  reload_loading_ = true;
  reloading_ = true;
  status_.state = "reloading";
  notifier_.Notify(SdNotifier::ReloadingMessage());
  spdlog::info("SIGHUP: reloading {}", config_path_);
  auto out = std::make_shared<Result<DaemonConfig>>(Status::Config("not loaded"));
  const std::string path = config_path_;
  RunOnWorker(
      loop_, "reloading", path, [path, out] { *out = LoadDaemonConfig(path); },
      [this, out](const Status& fault) {
        if (!fault.ok()) *out = fault;
        reload_loading_ = false;
        if (stopping_) return;
        if (!out->ok()) {
          spdlog::error("reload failed, keeping the running configuration: {}",
                        out->status().message());
          MaybeReady();
          if (reloading_) {  // watches still recovering: READY comes from them
            notifier_.Notify("READY=1");
            reloading_ = false;
            status_.state = "running";
          }
        } else {
          Status log = SetupLogging((*out)->log_level, (*out)->log_format);
          if (!log.ok()) spdlog::error("{}", log.message());
          for (const std::string& w : (*out)->warnings) spdlog::warn("{}", w);
          ApplyConfig(std::move(out->value()));
          spdlog::info("configuration reloaded: {} watch{}", cfg_.watches.size(),
                       cfg_.watches.size() == 1 ? "" : "es");
        }
        if (reload_again_) {  // the file may have changed since it was read
          reload_again_ = false;
          Reload();
        }
      });
}

void Daemon::BeginStop() {
  stopping_ = true;
  stop_flag_->store(true);
  status_.state = "stopping";
  notifier_.Notify("STOPPING=1");
  for (auto& [id, w] : watches_) RemoveWatch(w.get());
  retry_timer_->Close();
  stop_timer_ = std::make_unique<Timer>(loop_, [this] {
    spdlog::warn(
        "shutdown_timeout reached with {} publish(es) running: exiting; their bundles stay "
        "in processing/ and are published at the next start",
        queues_.running());
    spdlog::default_logger()->flush();
    std::_Exit(0);
  });
  stop_timer_->Start(cfg_.shutdown_timeout.count());
  MaybeFinishStop();
}

void Daemon::MaybeFinishStop() {
  if (!stopping_ || stopped_ || queues_.running() > 0 || hooks_.running() > 0) return;
  FinishStop();
}

void Daemon::FinishStop() {
  stopped_ = true;
  status_.state = "stopped";
  status_.stopped_unix = UnixSeconds();
  WriteStatus();  // the last one: a write still running repeats it when done
  if (inotify_) inotify_->Close();
  for (auto* s : signals_) {
    uv_close(reinterpret_cast<uv_handle_t*>(s),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_signal_t*>(h); });
  }
  signals_.clear();
  if (watchdog_timer_) watchdog_timer_->Close();
  if (status_timer_) status_timer_->Close();
  if (progress_timer_) progress_timer_->Close();
  if (stop_timer_) stop_timer_->Close();
  if (retry_timer_) retry_timer_->Close();
  pool_.Close();
  hooks_.KillAll();
  spdlog::info("stopped");
}

// ---------------------------------------------------------------- status

void Daemon::StatusChanged() {
  status_.watches.clear();
  std::map<std::string, WatchStatus> by_drop;
  for (const auto& [id, w] : watches_) {
    WatchStatus& ws = by_drop[w->cfg.drop];
    ws = {w->cfg.drop, w->cfg.serve, 0, 0, w->readiness.ignored(), {}};
    for (const auto& [name, why] : w->unclaimable) ws.unclaimable.push_back(name + ": " + why);
  }
  status_.publishing.clear();
  const int64_t now = SteadyMs();
  for (const auto& [key, q] : queues_.queues()) {
    for (size_t i = 0; i < q.jobs.size(); ++i) {
      const Job& job = q.jobs[i];
      if (i == 0 && q.running) {
        const int64_t started = job.progress->started_ms.load();
        status_.publishing.push_back(
            {.bundle = job.cfg.drop + "/" + job.claimed.name,
             .model = job.model,
             .bytes_done = job.progress->bytes_done.load(),
             .bytes_total = job.progress->bytes_total.load(),
             .elapsed_seconds = started > 0 ? (now - started) / 1000.0 : 0.0});
      }
      auto it = by_drop.find(job.cfg.drop);
      if (it == by_drop.end()) continue;
      if (i == 0 && q.running)
        ++it->second.in_flight;
      else
        ++it->second.queued;
    }
  }
  for (auto& [d, ws] : by_drop) status_.watches.push_back(ws);
  status_.stores.clear();
  for (const auto& [target, store] : stores_) {
    if (const auto st = store ? S3StoreStats(*store) : std::nullopt) {
      status_.stores.push_back({.target = target,
                                .bytes_uploaded = st->bytes_uploaded,
                                .requests = st->requests,
                                .retries = st->retries,
                                .last_error = st->last_error});
    }
  }
  status_dirty_ = true;
  if (status_timer_ && !status_timer_->active() && !stopped_) status_timer_->Start(100);
  // While publishes run, their progress is refreshed every second.
  if (progress_timer_ && !stopped_) {
    if (!status_.publishing.empty() && !progress_timer_->active()) {
      progress_timer_->Start(1000, 1000);
    } else if (status_.publishing.empty() && progress_timer_->active()) {
      progress_timer_->Stop();
    }
  }
}

void Daemon::WriteStatus() {
  if (status_writing_) {  // the running write repeats this one when it ends
    status_dirty_ = true;
    return;
  }
  status_writing_ = true;
  status_dirty_ = false;
  notifier_.Notify("STATUS=" + StatusLine(status_));
  auto json = std::make_shared<std::string>(StatusToJson(status_));
  auto prom = std::make_shared<std::string>(StatusToPrometheus(status_));
  const std::string dir = cfg_.state_dir;
  RunOnWorker(
      loop_, "writing the status files in", dir,
      [dir, json, prom] {
        FileSystem& fs = DefaultFileSystem();
        Status a = fs.WriteFileAtomically(dir + "/status.json", *json);
        Status b = fs.WriteFileAtomically(dir + "/weightdrop.prom", *prom);
        if (!a.ok()) spdlog::warn("{}", a.message());
        if (!b.ok()) spdlog::warn("{}", b.message());
      },
      [this](const Status& fault) {
        if (!fault.ok()) spdlog::warn("{}", fault.message());
        status_writing_ = false;
        if (!status_dirty_) return;
        if (stopped_) {
          WriteStatus();  // the final state, after FinishStop
        } else {
          StatusChanged();
        }
      });
}

// Under the instance lock, so no other daemon writes them: the temporary
// files of status, metrics and crash-log writes a kill interrupted
// (<name>.tmp-<pid>-<hex>, as FileSystem::WriteFileAtomically names them).
// Left alone they would pile up, one per unlucky kill.
void RemoveStaleTemporaries(const std::string& state_dir) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(state_dir, ec)) {
    const std::string name = e.path().filename().string();
    for (const char* base : {"status.json", "weightdrop.prom", "crashes"}) {
      const std::string prefix = std::string(base) + ".tmp-";
      if (name.compare(0, prefix.size(), prefix) != 0) continue;
      std::error_code rm;
      if (std::filesystem::remove(e.path(), rm))
        spdlog::info("removed stale {}", e.path().string());
    }
  }
}

// Closes whatever is still open (after FinishStop, nothing should be).
void CloseAll(uv_loop_t* loop) {
  uv_walk(
      loop,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
}

}  // namespace

int RunDaemon(const std::string& config_arg, const DaemonTestHooks& hooks) {
  // Absolute, so a reload after a chdir (or status readers) find the same file.
  const std::string config_path = std::filesystem::absolute(config_arg).lexically_normal().string();
  // Logging first, with the defaults (journald priorities under systemd), so
  // that a config error reaches `journalctl -p err`, not priority 6.
  if (Status log = SetupLogging(DaemonConfig().log_level, DaemonConfig().log_format); !log.ok()) {
    spdlog::error("{}", log.message());
  }
  auto cfg = LoadDaemonConfig(config_path);
  if (!cfg.ok()) {
    spdlog::error("{}", cfg.status().message());
    return 1;
  }
  if (Status log = SetupLogging(cfg->log_level, cfg->log_format); !log.ok()) {
    spdlog::error("{}", log.message());
    return 1;
  }
  spdlog::info("weightdrop {} starting (config {}, {} kernels)", WD_VERSION, config_path,
               KernelPathName(ActiveKernelPath()));
  for (const std::string& w : cfg->warnings) spdlog::warn("{}", w);
  // One daemon per state_dir, before anything touches the folders. Held
  // until the process exits (a reload keeps the first state_dir's lock).
  Result<InstanceLock> instance = InstanceLock::Acquire(cfg->state_dir);
  if (!instance.ok()) {
    spdlog::error("{}", instance.status().message());
    return 1;
  }
  RemoveStaleTemporaries(cfg->state_dir);
  // Before any worker runs: what crashed earlier starts, and the handlers
  // that record the next crash (state_dir/crashes is not reloaded on SIGHUP).
  auto crashes = StartCrashGuard(cfg->state_dir);
  if (!crashes.ok()) {
    spdlog::error("crash guard disabled: {}", crashes.status().message());
    crashes = CrashHistory();
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  int code = 0;
  {
    Daemon d(&loop, config_path, hooks,
             std::make_shared<const CrashHistory>(std::move(crashes).value()));
    if (Status st = d.Start(std::move(cfg).value()); !st.ok()) {
      spdlog::error("{}", st.message());
      code = 1;
      CloseAll(&loop);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (code == 0) code = d.exit_code();
  }
  CloseAll(&loop);
  uv_run(&loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&loop) != 0) {
    // A handle or request outlived shutdown: a bug, so say it in the exit code.
    spdlog::error("event loop did not close cleanly");
    code = code == 0 ? 1 : code;
  }
  return code;
}

}  // namespace wd
