#include "daemon/cli.h"

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>

#include "config/daemon_config.h"
#include "config/pipeline_config.h"
#include "core/bundle_formats.h"
#include "core/cpu_kernels.h"
#include "core/file_system.h"
#include "core/inspector.h"
#include "core/open_store.h"
#include "core/pipeline.h"
#include "core/publisher.h"
#include "core/utf8.h"
#include "core/verifier.h"
#include "core/version_files.h"
#include "daemon/daemon.h"
#include "daemon/drop_folder.h"
#include "daemon/human_text.h"
#include "daemon/status_report.h"

namespace wd {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int Fail(const Status& s) {
  if (s.kind() == ErrorKind::kInternal) {  // the message says "internal error while ..."
    std::cerr << "weightdrop: " << EscapeControl(s.message())
              << " (a bug in weightdrop, please report it)\n";
    return kExitFailure;
  }
  std::cerr << "weightdrop: error: " << EscapeControl(s.message()) << "\n";
  return s.kind() == ErrorKind::kUsage ? kExitUsage : kExitFailure;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Pipeline flags shared by publish and inspect, over --config: --shard-size
// replaces its value, --quantize adds patterns to its quantize map,
// --quantize-rest replaces its fallthrough, --group replaces its groups and
// --strict-patterns turns strict_patterns on (docs/configuration.md).
struct PipelineFlags {
  std::string config;
  std::string shard_size;
  std::vector<std::string> quantize;  // DTYPE=PATTERN[,PATTERN]
  std::string quantize_rest;          // DTYPE: the fallthrough
  std::vector<std::string> groups;    // PATTERN[,PATTERN]
  bool strict_patterns = false;
  bool force = false;  // publish only
  // inspect --config DAEMON.yaml: the chosen watch's settings (defaults with
  // its overrides), used instead of reading `config` as pipeline settings.
  std::optional<PipelineOptions> watch_options;

  void Add(CLI::App* cmd, bool with_overrides, bool daemon_config = false) {
    cmd->add_option("--config", config,
                    daemon_config ? "pipeline settings, or a daemon config with --watch (YAML, "
                                    "docs/configuration.md)"
                                  : "pipeline settings (YAML, docs/configuration.md)");
    if (!with_overrides) return;
    cmd->add_option("--shard-size", shard_size, "bytes per shard file, e.g. 4MiB");
    cmd->add_option("--quantize", quantize,
                    "DTYPE=PATTERN[,PATTERN] (uint8|uint16|float16); adds to --config's");
    cmd->add_option("--quantize-rest", quantize_rest,
                    "DTYPE (uint8|uint16|float16) for every float weight no --quantize pattern "
                    "matches (the fallthrough, `DTYPE: true` in YAML); replaces --config's");
    cmd->add_option("--group", groups, "PATTERN[,PATTERN]: one group per flag, in order");
    cmd->add_flag("--strict-patterns", strict_patterns,
                  "a quantize or group pattern that matches no weight is an error, not a "
                  "warning (strict_patterns: true in YAML)");
  }

  void AddPublishOnly(CLI::App* cmd) {
    cmd->add_flag("--force", force,
                  "publish a new version even if the bundle and settings are the current "
                  "version's (to repair a damaged version)");
  }

  // Settings errors found while planning also name the settings file.
  Status Explain(const Status& s) const {
    if (s.kind() != ErrorKind::kConfig || config.empty()) return s;
    return Status::Config(s.message() + " (settings from " + config + ")");
  }

  Result<PipelineOptions> Resolve() const {
    PipelineOptions o;
    if (watch_options) {
      o = *watch_options;
    } else if (!config.empty()) {
      WD_ASSIGN_OR_RETURN(o, LoadPipelineConfig(config));
    }
    if (!shard_size.empty()) {
      auto size = ParseByteSize(shard_size);
      if (!size.ok())
        return Status::Usage("--shard-size " + shard_size + ": " + size.status().message());
      o.shard_size = *size;
    }
    for (const auto& q : quantize) {
      const size_t eq = q.find('=');
      auto dtype = QuantDtypeFromName(q.substr(0, eq == std::string::npos ? q.size() : eq));
      if (eq == std::string::npos || !dtype.ok() || SplitCommas(q.substr(eq + 1)).empty()) {
        return Status::Usage(
            "--quantize " + q +
            ": expected DTYPE=PATTERN[,PATTERN] with DTYPE uint8, uint16 or float16");
      }
      o.quantize.patterns.emplace_back(*dtype, SplitCommas(q.substr(eq + 1)));
    }
    if (!quantize_rest.empty()) {
      auto dtype = QuantDtypeFromName(quantize_rest);
      if (!dtype.ok()) {
        return Status::Usage("--quantize-rest " + quantize_rest +
                             ": expected DTYPE, one of uint8, uint16 or float16");
      }
      o.quantize.fallthrough = *dtype;
    }
    if (strict_patterns) o.strict_patterns = true;
    if (!groups.empty()) {
      o.grouping = Grouping();
      o.grouping.kind = Grouping::Kind::kPatterns;
      for (const auto& g : groups)
        o.grouping.rules.push_back({.name = "", .match = SplitCommas(g)});
    }
    WD_RETURN_IF_ERROR(ValidatePipelineOptions(o));
    return o;
  }
};

// The one status line of a command on stderr when stderr is a terminal:
// Draw() redraws it in place and Clear() removes it; call Clear() before
// writing anything else to stderr, so no message is ever glued to a
// half-drawn line. Off a terminal Draw() does nothing. Any thread.
class TerminalLine {
 public:
  TerminalLine() : tty_(isatty(STDERR_FILENO) == 1) {}
  ~TerminalLine() { Clear(); }
  TerminalLine(const TerminalLine&) = delete;
  TerminalLine& operator=(const TerminalLine&) = delete;

  bool tty() const { return tty_; }
  void Draw(const std::string& text) {
    if (!tty_) return;
    std::lock_guard<std::mutex> lock(mu_);
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    ClearLocked();
  }

 private:
  void ClearLocked() {
    if (!drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
  const bool tty_;
  bool drawn_ = false;
  std::mutex mu_;
};

// Publish progress on `line`: weights and MiB done of total, rate and ETA,
// redrawn at most ~10 times a second; the final state (every weight) is
// always drawn. Null off a terminal. "line" must outlive the function.
ProgressFn TerminalProgress(TerminalLine& line) {
  if (!line.tty()) return nullptr;
  using Clock = std::chrono::steady_clock;
  struct State {
    Clock::time_point start = Clock::now();
    Clock::time_point last;
  };
  auto st = std::make_shared<State>();
  return [st, &line](const Progress& p) {
    const auto now = Clock::now();
    const bool all_done = p.weights_done == p.weights_total;
    if (!all_done && now - st->last < std::chrono::milliseconds(100)) return;
    st->last = now;
    const double seconds = std::chrono::duration<double>(now - st->start).count();
    const double rate = seconds > 0 ? p.bytes_done / seconds : 0;
    char text[160];
    std::snprintf(text, sizeof text, "  %zu/%zu weights, %.1f/%.1f MiB", p.weights_done,
                  p.weights_total, p.bytes_done / 1048576.0, p.bytes_total / 1048576.0);
    std::string out = text;
    if (p.bytes_done > 0 && seconds >= 0.2) {
      out += ", " + HumanRate(rate);
      if (!all_done) out += ", ETA " + HumanDuration((p.bytes_total - p.bytes_done) / rate);
    }
    line.Draw(out);
  };
}

// "published mlp version 3: 16 weights, 1.0 GiB in 4.1 s (250 MiB/s), 259
// shards", or the unchanged note: the last line publish writes to stderr.
std::string PublishSummary(const std::string& bundle, const std::string& model,
                           const BundlePublish& bp, double seconds) {
  const PublishResult& pr = bp.result;
  if (pr.unchanged) {
    return model + " unchanged: " + bundle + " is identical to version " +
           std::to_string(pr.version) +
           " (same bundle sha256 and settings): nothing published; --force publishes anew";
  }
  uint64_t bytes = 0, weights = 0, shards = 0;
  for (const PlannedGroup& g : bp.plan.groups) {
    bytes += g.total_bytes;
    weights += g.weights.size();
    shards += g.shards.size();
  }
  return "published " + model + " version " + std::to_string(pr.version) + ": " +
         Counted(weights, "weight", "weights") + ", " + HumanBytes(bytes) + " in " +
         HumanDuration(seconds) + " (" + HumanRate(seconds > 0 ? bytes / seconds : 0) + "), " +
         Counted(shards, "shard", "shards");
}

int RunPublish(const std::string& bundle, const std::string& to, std::string model,
               int keep_versions, const PipelineFlags& flags) {
  auto options = flags.Resolve();
  if (!options.ok()) return Fail(options.status());
  if (model.empty()) model = DefaultModelName(bundle);
  PublishSettings settings{.model = model,
                           .keep_versions = keep_versions,
                           .skip_if_unchanged = !flags.force,
                           .options = *options,
                           .source_path = "",
                           .on_planned = nullptr};
  TerminalLine line;
  const auto start = std::chrono::steady_clock::now();
  auto store = OpenVersionStore(to, DefaultFileSystem(), S3StoreOptions());
  if (!store.ok()) return Fail(store.status());
  auto r = PublishBundle(bundle, settings, **store, TerminalProgress(line));
  line.Clear();  // before any other output
  if (!r.ok()) return Fail(flags.Explain(r.status()));
  const PublishResult& pr = r->result;
  if (r->plan.hazard_split) {
    std::cerr << "weightdrop: note: the last shard was split in two so that tfjs-core's "
                 "uniform-shard lookup reads it correctly (docs/formats.md)\n";
  }
  for (const auto& w : pr.warnings)
    std::cerr << "weightdrop: warning: " << EscapeControl(w) << "\n";
  std::cerr << PublishSummary(
                   bundle, model, *r,
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count())
            << "\n";
  std::cout << pr.version_dir << "\n";
  return kExitOk;
}

std::string ShapeText(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

int RunInspect(const std::string& bundle, const PipelineFlags& flags) {
  auto options = flags.Resolve();
  if (!options.ok()) return Fail(options.status());
  auto r = Inspect(bundle, *options);
  if (!r.ok()) return Fail(flags.Explain(r.status()));
  std::printf("%-32s %-8s %-14s %-10s %12s %-10s %-8s %12s %12s\n", "name", "source", "shape",
              "dtype", "bytes", "group", "quant", "max_abs_err", "rms_err");
  for (const auto& row : r->rows) {
    std::string group = std::to_string(row.group) + ":" + row.group_label;
    if (row.quantization.empty()) {
      std::printf("%-32s %-8s %-14s %-10s %12llu %-10s %-8s %12s %12s\n", row.name.c_str(),
                  row.source_dtype.c_str(), ShapeText(row.shape).c_str(), row.dtype.c_str(),
                  static_cast<unsigned long long>(row.bytes), group.c_str(), "-", "-", "-");
    } else {
      std::printf("%-32s %-8s %-14s %-10s %12llu %-10s %-8s %12.6g %12.6g\n", row.name.c_str(),
                  row.source_dtype.c_str(), ShapeText(row.shape).c_str(), row.dtype.c_str(),
                  static_cast<unsigned long long>(row.bytes), group.c_str(),
                  row.quantization.c_str(), row.max_abs_error, row.rms_error);
    }
  }
  std::printf("shards: %zu\n", r->shards.size());
  for (const auto& s : r->shards) std::printf("  %s\n", s.c_str());
  std::fflush(stdout);  // the warnings come after the table on a terminal too
  for (const auto& w : r->warnings)
    std::cerr << "weightdrop: warning: " << EscapeControl(w) << "\n";
  return kExitOk;
}

int RunVerify(const std::string& target, const std::string& against) {
  if (IsS3Url(target) && !against.empty()) {
    return Fail(Status::Usage("verify --against is for serve folders; " + target +
                              " is checked against its publish.json without it"));
  }
  auto r = IsS3Url(target) ? VerifyS3(target, S3StoreOptions()) : Verify(target, against);
  if (!r.ok()) return Fail(r.status());
  for (const auto& w : r->warnings)
    std::cerr << "weightdrop: warning: " << EscapeControl(w) << "\n";
  for (const auto& p : r->problems)
    std::cerr << "weightdrop: problem: " << EscapeControl(p) << "\n";
  if (!r->problems.empty()) {
    std::cerr << "weightdrop: " << r->version_dir << ": "
              << Counted(r->problems.size(), "problem", "problems") << "\n";
    return kExitFailure;
  }
  std::cout << r->version_dir << ": ok (" << Counted(r->shards_checked, "shard", "shards")
            << " verified)\n";
  return kExitOk;
}

int RunRollback(const std::string& model_dir, std::optional<int> to) {
  std::string dir = model_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  const std::string serve = slash == std::string::npos ? "." : dir.substr(0, slash);
  const std::string model = slash == std::string::npos ? dir : dir.substr(slash + 1);
  if (IsS3Url(dir) && serve.size() <= std::string("s3:/").size()) {
    return Fail(Status::Usage(dir + ": name a model: s3://bucket[/prefix]/MODEL"));
  }
  auto store = OpenVersionStore(serve.empty() ? "/" : serve, DefaultFileSystem(), S3StoreOptions());
  if (!store.ok()) return Fail(store.status());
  auto r = (*store)->Rollback(model, to);
  if (!r.ok()) return Fail(r.status());
  std::cout << dir << "/" << *r << "\n";
  return kExitOk;
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path.substr(path.rfind('/') + 1);
}

// The watches of `cfg` that `selector` names: a drop folder (as written in
// the config, or as a path from here) or a drop folder's base name. Empty:
// every watch.
Result<std::vector<const WatchConfig*>> SelectWatches(const DaemonConfig& cfg,
                                                      const std::string& selector) {
  std::vector<const WatchConfig*> all, by_path, by_name;
  std::string drops;
  for (const WatchConfig& w : cfg.watches) all.push_back(&w);
  if (selector.empty()) return all;
  std::error_code ec;
  std::string abs = std::filesystem::absolute(selector, ec).lexically_normal().string();
  while (abs.size() > 1 && abs.back() == '/') abs.pop_back();
  for (const WatchConfig& w : cfg.watches) {
    drops += (drops.empty() ? "" : ", ") + w.drop;
    if (w.drop == selector || (!ec && w.drop == abs)) {
      by_path.push_back(&w);
    } else if (selector.find('/') == std::string::npos && BaseName(w.drop) == selector) {
      by_name.push_back(&w);
    }
  }
  if (!by_path.empty()) return by_path;
  if (by_name.size() == 1) return by_name;
  if (by_name.empty()) {
    return Status::Usage("--watch " + selector + ": no watch of " + cfg.source +
                         " has that drop folder or base name (drop folders: " +
                         (drops.empty() ? "none" : drops) + ")");
  }
  std::string names;
  for (const WatchConfig* w : by_name) names += (names.empty() ? "" : ", ") + w->drop;
  return Status::Usage("--watch " + selector + " names " + std::to_string(by_name.size()) +
                       " watches (" + names + "): pass the drop folder's path");
}

// `weightdrop retry`: moves failed bundles of the selected watches (all, or
// those named: their name in failed/ or as dropped) back into their drop
// folder. Oldest failure first, so a daemon publishes them in their order.
int RunRetry(const std::string& config, const std::string& watch,
             const std::vector<std::string>& names) {
  auto cfg = LoadDaemonConfig(config);
  if (!cfg.ok()) return Fail(cfg.status());
  auto watches = SelectWatches(*cfg, watch);
  if (!watches.ok()) return Fail(watches.status());
  std::vector<bool> used(names.size(), false);
  size_t moved = 0;
  bool trouble = false;
  for (const WatchConfig* w : *watches) {
    auto failed = ListFailed(w->drop);
    if (!failed.ok()) {
      trouble = true;
      std::cerr << "weightdrop: error: " << EscapeControl(failed.status().message()) << "\n";
      continue;
    }
    for (const FailedBundle& f : *failed) {
      bool wanted = names.empty();
      for (size_t i = 0; i < names.size(); ++i) {
        const std::string n = BaseName(names[i]);
        if (n == f.name || n == f.original) wanted = used[i] = true;
      }
      if (!wanted) continue;
      const std::string from = w->drop + "/.weightdrop/failed/" + f.name;
      auto r = RetryFailed(w->drop, f);
      if (!r.ok()) {
        trouble = true;
        if (r.status().sys_errno() == EEXIST) {
          std::cerr << "weightdrop: " << w->drop << "/" << f.original << " already exists: " << from
                    << " stays (never overwritten); retry it once that one is taken\n";
        } else {
          std::cerr << "weightdrop: error: " << EscapeControl(r.status().message()) << "\n";
        }
        continue;
      }
      ++moved;
      std::cout << "retry: " << from << " -> " << r->path << "\n";
      if (!r->warning.empty())
        std::cerr << "weightdrop: warning: " << EscapeControl(r->warning) << "\n";
    }
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (used[i]) continue;
    trouble = true;
    std::cerr << "weightdrop: error: no failed bundle " << names[i] << " in "
              << (watches->size() == 1 ? (*watches)[0]->drop + "/.weightdrop/failed"
                                       : "the failed/ folders of " + cfg->source)
              << "\n";
  }
  std::cout << "retry: " << Counted(moved, "bundle", "bundles") << " moved back\n";
  return trouble ? kExitFailure : kExitOk;
}

// inspect --config DAEMON.yaml [--watch W]: sets `flags` to the watch's
// settings and prints the model name its template gives `bundle`. Nothing
// to do for pipeline settings. Returns an exit code; kExitOk to go on.
int UseInspectWatch(const std::string& bundle, const std::string& watch, PipelineFlags& flags) {
  if (flags.config.empty()) {
    if (watch.empty()) return kExitOk;
    return Fail(Status::Usage("--watch " + watch + " needs --config with a daemon config"));
  }
  auto text = DefaultFileSystem().ReadFile(flags.config, 16u << 20);
  if (!text.ok()) return Fail(text.status());
  if (!LooksLikeDaemonConfig(*text)) {
    if (watch.empty()) return kExitOk;
    return Fail(Status::Usage("--watch " + watch + ": " + flags.config +
                              " is pipeline settings, not a daemon config (it has no watches)"));
  }
  auto cfg = ParseDaemonConfig(*text, flags.config);
  if (!cfg.ok()) return Fail(cfg.status());
  auto watches = SelectWatches(*cfg, watch);
  if (!watches.ok()) return Fail(watches.status());
  if (watches->size() != 1) {
    std::string drops;
    for (const WatchConfig* w : *watches) drops += (drops.empty() ? "" : ", ") + w->drop;
    return Fail(
        Status::Usage(flags.config + " has " + Counted(watches->size(), "watch", "watches") +
                      ": pick one with --watch DROP (" + (drops.empty() ? "none" : drops) + ")"));
  }
  const WatchConfig& w = *watches->front();
  flags.watch_options = w.options;
  auto model = ExpandModelTemplate(w.model, BaseName(bundle), w.drop);
  if (model.ok()) {
    std::printf("watch %s: publishes as model %s into %s/%s (model template '%s')\n",
                w.drop.c_str(), model->c_str(), w.serve.c_str(), model->c_str(), w.model.c_str());
  } else {
    std::printf("watch %s: would fail this bundle: %s\n", w.drop.c_str(),
                model.status().message().c_str());
  }
  return kExitOk;
}

// What check-config reads a file as: told by its keys (LooksLikeDaemonConfig)
// unless --daemon or --pipeline says.
enum class ConfigKind { kGuess, kDaemon, kPipeline };

int RunCheckConfig(const std::string& file, ConfigKind kind) {
  auto text = DefaultFileSystem().ReadFile(file, 16u << 20);
  if (!text.ok()) return Fail(text.status());
  if (kind == ConfigKind::kGuess) {
    kind = LooksLikeDaemonConfig(*text) ? ConfigKind::kDaemon : ConfigKind::kPipeline;
  }
  std::vector<std::string> warnings;
  std::string what = "pipeline settings";
  if (kind == ConfigKind::kDaemon) {
    auto d = ParseDaemonConfig(*text, file);
    if (!d.ok()) return Fail(d.status());
    warnings = d->warnings;
    const size_t n = d->watches.size();
    what = "daemon config, " + std::to_string(n) + (n == 1 ? " watch" : " watches");
  } else {
    auto r = ParsePipelineConfig(*text, file, &warnings);
    if (!r.ok()) return Fail(r.status());
  }
  for (const std::string& w : warnings)
    std::cerr << "weightdrop: warning: " << EscapeControl(w) << "\n";
  std::cout << file << ": ok (" << what << ")\n";
  return kExitOk;
}

// Lifts the soft open-file limit to the hard one (as systemd's LimitNOFILE
// does for the service): a publish keeps its finished shards open for one
// batched sync at the end. Nothing here uses select().
void RaiseOpenFileLimit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace

// The models of a serve target: current version and the versions kept.
int RunStoreStatus(const std::string& to, const std::string& only) {
  auto store = OpenVersionStore(to, DefaultFileSystem(), S3StoreOptions());
  if (!store.ok()) return Fail(store.status());
  std::vector<std::string> models = {only};
  if (only.empty()) {
    auto listed = (*store)->ListModels();
    if (!listed.ok()) return Fail(listed.status());
    models = *listed;
  }
  std::printf("%-32s %-8s %s\n", "model", "current", "versions");
  for (const std::string& m : models) {
    auto cur = (*store)->CurrentVersion(m);
    auto versions = (*store)->ListVersions(m);
    if (!cur.ok()) return Fail(cur.status());
    if (!versions.ok()) return Fail(versions.status());
    std::printf("%-32s %-8s %s\n", m.c_str(), *cur ? std::to_string(**cur).c_str() : "-",
                JoinInts(*versions).c_str());
  }
  return kExitOk;
}

int RunStatus(const std::string& state_dir, const std::string& config) {
  std::string dir = state_dir;
  if (dir.empty() && !config.empty()) {
    auto c = LoadDaemonConfig(config);
    if (!c.ok()) return Fail(c.status());
    dir = c->state_dir;
  }
  if (dir.empty()) dir = DaemonConfig().state_dir;
  auto r = RenderStatusFile(dir + "/status.json");
  if (!r.ok()) return Fail(r.status());
  std::cout << *r;
  return kExitOk;
}

int RunCli(int argc, char** argv) {
  RaiseOpenFileLimit();
  CLI::App app{"weightdrop: publish NumPy weight bundles as TensorFlow.js weight shards"};
  app.set_version_flag("--version", std::string("weightdrop ") + WD_VERSION + " (" +
                                        KernelPathName(ActiveKernelPath()) + " kernels)");
  app.require_subcommand(1);

  PipelineFlags publish_flags, inspect_flags;
  std::string bundle, to, model, target, against, config_file;
  int keep_versions = 3;
  std::optional<int> rollback_to;

  auto* publish = app.add_subcommand("publish", "convert a bundle and publish it as a new version");
  publish->add_option("BUNDLE", bundle, BundleExtensionList() + " file, or a folder of them")
      ->required();
  publish
      ->add_option("--to", to,
                   "serve root S (the version goes to S/M/<v>), or s3://bucket/prefix "
                   "(docs/operations.md, \"Object storage\")")
      ->required();
  publish->add_option("--model", model, "model name M (default: bundle name without extension)");
  publish->add_option("--keep-versions", keep_versions, "versions to keep (default 3)")
      ->check(CLI::PositiveNumber);
  publish_flags.Add(publish, true);
  publish_flags.AddPublishOnly(publish);

  auto* check =
      app.add_subcommand("check-config", "validate a pipeline settings file or a daemon config");
  check->add_option("FILE", config_file, "YAML file")->required();
  bool check_daemon = false, check_pipeline = false;
  auto* as_daemon = check->add_flag("--daemon", check_daemon,
                                    "read FILE as a daemon config (default: told by its keys)");
  check->add_flag("--pipeline", check_pipeline, "read FILE as pipeline settings")
      ->excludes(as_daemon);

  auto* inspect = app.add_subcommand("inspect", "show how a bundle would be published");
  inspect->add_option("BUNDLE", bundle, BundleExtensionList() + " file, or a folder of them")
      ->required();
  inspect_flags.Add(inspect, true, /*daemon_config=*/true);
  std::string inspect_watch;
  inspect->add_option("--watch", inspect_watch,
                      "with a daemon --config: the watch (drop folder or its base name) whose "
                      "settings to use; may be left out when there is one");

  auto* verify = app.add_subcommand("verify", "check a published model or version");
  verify
      ->add_option("TARGET", target,
                   "S/M (current version) or S/M/V; s3://bucket/prefix/M[/V] for object storage")
      ->required();
  verify->add_option("--against", against, "also check the shards are what BUNDLE encodes to");

  auto* rollback = app.add_subcommand("rollback", "point a model back at an older kept version");
  rollback->add_option("MODEL_DIR", target, "S/M, or s3://bucket/prefix/M")->required();
  rollback->add_option("--to", rollback_to, "version (default: the one before current)");

  std::string run_config, state_dir;
  auto* run = app.add_subcommand("run", "run the daemon: watch drop folders and publish");
  run->add_option("--config", run_config, "daemon config (YAML)")->required();

  std::string retry_config, retry_watch;
  std::vector<std::string> retry_names;
  auto* retry = app.add_subcommand(
      "retry", "move failed bundles back into their drop folder, for the daemon to take again");
  retry->add_option("--config", retry_config, "daemon config (YAML)")->required();
  retry->add_option("--watch", retry_watch, "only this watch: its drop folder or its base name");
  retry->add_option("NAME", retry_names,
                    "bundles to retry, by name in failed/ or as dropped (default: all)");

  auto* status = app.add_subcommand(
      "status", "show what a running daemon reports, or (--to) the models of a serve target");
  auto* status_state = status->add_option("--state-dir", state_dir, "the daemon's state_dir");
  auto* status_config =
      status->add_option("--config", run_config, "read state_dir from this daemon config");
  std::string status_to, status_model;
  auto* status_to_opt =
      status->add_option("--to", status_to, "a serve root or s3://bucket/prefix: its models")
          ->excludes(status_state)
          ->excludes(status_config);
  // --model alone used to be ignored silently, showing every model.
  status->add_option("--model", status_model, "with --to: only this model")->needs(status_to_opt);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  // Anything thrown below (std::bad_alloc from a bundle that declares more
  // than fits in memory) is a clear message naming the bundle and exit 1,
  // never an abort.
  int code = kExitUsage;
  const Status st =
      CatchInternal(publish->parsed() ? "publishing" : "inspecting", bundle, [&]() -> Status {
        if (publish->parsed()) code = RunPublish(bundle, to, model, keep_versions, publish_flags);
        if (inspect->parsed()) {
          code = UseInspectWatch(bundle, inspect_watch, inspect_flags);
          if (code == kExitOk) code = RunInspect(bundle, inspect_flags);
        }
        return Status::Ok();
      });
  if (!st.ok()) return Fail(st);
  if (publish->parsed() || inspect->parsed()) return code;
  if (check->parsed()) {
    return RunCheckConfig(config_file, check_daemon     ? ConfigKind::kDaemon
                                       : check_pipeline ? ConfigKind::kPipeline
                                                        : ConfigKind::kGuess);
  }
  if (verify->parsed()) return RunVerify(target, against);
  if (rollback->parsed()) return RunRollback(target, rollback_to);
  if (run->parsed()) return RunDaemon(run_config);
  if (retry->parsed()) return RunRetry(retry_config, retry_watch, retry_names);
  if (status->parsed() && !status_to.empty()) return RunStoreStatus(status_to, status_model);
  if (status->parsed()) return RunStatus(state_dir, run_config);
  return kExitUsage;
}

}  // namespace wd
