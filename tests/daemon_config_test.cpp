// The daemon config (config/daemon_config.h): tables of YAML -> settings or
// "file:line:col: message", layering of watch keys over `defaults`, path
// resolution, folder checks, durations and model templates.
#include "config/daemon_config.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <sstream>

#include "tests/test_util.h"

namespace wd {
namespace {

// The config files of the tables live here, so relative paths land in /etc/wd.
constexpr const char* kFile = "/etc/wd/d.yaml";

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? "," : "") + v[i];
  return out;
}

using test::DumpOptions;

// Every field of a watch, in the struct's order.
std::string Dump(const WatchConfig& w) {
  std::ostringstream s;
  s << "drop=" << w.drop << " serve=" << w.serve << " model=" << w.model << " {"
    << DumpOptions(w.options) << "} on_publish=[" << Join(w.hooks.on_publish) << "] on_failure=["
    << Join(w.hooks.on_failure) << "] hook_timeout=" << w.hooks.timeout.count()
    << " settle=" << w.settle.count() << " rescan=" << w.rescan.count()
    << " keep=" << w.keep_versions
    << " on_success=" << (w.on_success == OnSuccess::kArchive ? "archive" : "delete");
  return s.str();
}

// The global settings and every watch, one per line.
std::string Dump(const DaemonConfig& c) {
  std::ostringstream s;
  s << "state_dir=" << c.state_dir << " log=" << c.log_level << "/"
    << (c.log_format == LogFormat::kText ? "text" : "json")
    << " shutdown=" << c.shutdown_timeout.count() << " defaults={" << DumpOptions(c.defaults)
    << "}";
  for (const WatchConfig& w : c.watches) s << "\n" << Dump(w);
  return s.str();
}

// A watch line with every default but drop and serve.
std::string DefaultWatch(const std::string& drop, const std::string& serve,
                         const std::string& options = "shard=4194304 single") {
  return "drop=" + drop + " serve=" + serve + " model={stem} {" + options +
         "} on_publish=[] on_failure=[] hook_timeout=30000 settle=2000 rescan=30000 keep=3 "
         "on_success=archive";
}

const std::string kGlobalDefaults =
    "state_dir=/var/lib/weightdrop log=info/text shutdown=30000 defaults={shard=4194304 single}";

DaemonConfig MustParse(const std::string& yaml, const std::string& file = kFile) {
  Result<DaemonConfig> config = ParseDaemonConfig(yaml, file);
  REQUIRE_MESSAGE(config.ok(), config.status().message());
  return *config;
}

TEST_CASE("a daemon config with one bare watch gets every default") {
  const DaemonConfig c = MustParse("watches:\n  - drop: in\n    serve: out\n");
  CHECK(c.source == kFile);
  CHECK(Dump(c) == kGlobalDefaults + "\n" + DefaultWatch("/etc/wd/in", "/etc/wd/out"));
}

TEST_CASE("valid daemon configs parse to the intended settings") {
  const std::pair<const char*, std::string> rows[] = {
      {"state_dir: /srv/state\nlog_level: debug\nlog_format: json\nshutdown_timeout: 1m\n"
       "watches: [{drop: /d, serve: /s}]\n",
       "state_dir=/srv/state log=debug/json shutdown=60000 defaults={shard=4194304 single}\n" +
           DefaultWatch("/d", "/s")},
      {"state_dir: ./state/\nshutdown_timeout: 0\nwatches: [{drop: /d, serve: /s}]\n",
       "state_dir=/etc/wd/state log=info/text shutdown=0 defaults={shard=4194304 single}\n" +
           DefaultWatch("/d", "/s")},
      {"watches:\n"
       "  - drop: ./drop\n"
       "    serve: ../srv/models/\n"
       "    model: \"{drop}-{stem}_v.1\"\n"
       "    settle: 0\n"
       "    rescan: 1.5m\n"
       "    keep_versions: 10\n"
       "    on_success: delete\n"
       "    hooks:\n"
       "      on_publish: [/bin/notify, \"{model}\", \"v={version}\", \"{dir}\"]\n"
       "      on_failure: [alert, \"{bundle}: {error}\", \"{manifest}\", '{\"json\": 1}']\n"
       "      timeout: 500ms\n",
       kGlobalDefaults +
           "\ndrop=/etc/wd/drop serve=/etc/srv/models model={drop}-{stem}_v.1 "
           "{shard=4194304 single} on_publish=[/bin/notify,{model},v={version},{dir}] "
           "on_failure=[alert,{bundle}: {error},{manifest},{\"json\": 1}] hook_timeout=500 "
           "settle=0 rescan=90000 keep=10 on_success=delete"},
      // Two watches may publish into one serve root (different models).
      {"watches:\n  - {drop: /a, serve: /s}\n  - {drop: /b, serve: /s, settle: 2.5s}\n",
       kGlobalDefaults + "\n" + DefaultWatch("/a", "/s") + "\n" +
           "drop=/b serve=/s model={stem} {shard=4194304 single} on_publish=[] on_failure=[] "
           "hook_timeout=30000 settle=2500 rescan=30000 keep=3 on_success=archive"},
      // A drop folder next to the serve root, sharing a name prefix, is fine.
      {"watches: [{drop: /srv/models-in, serve: /srv/models, hooks: {}}]\n",
       kGlobalDefaults + "\n" + DefaultWatch("/srv/models-in", "/srv/models")},
      {"# keys in any order: watches before defaults\n"
       "watches: [{drop: /d, serve: /s}]\ndefaults: {shard_size: 1KiB}\n",
       "state_dir=/var/lib/weightdrop log=info/text shutdown=30000 defaults={shard=1024 single}\n" +
           DefaultWatch("/d", "/s", "shard=1024 single")},
  };
  for (const auto& [yaml, dump] : rows) {
    const std::string yaml_text = yaml;
    CAPTURE(yaml_text);
    CHECK(Dump(MustParse(yaml)) == dump);
  }
}

TEST_CASE("a watch's pipeline keys replace the defaults' keys and inherit the rest") {
  const DaemonConfig c = MustParse(
      "defaults:\n"
      "  shard_size: 8KiB\n"
      "  groups: [{match: 'enc/*'}]\n"
      "  unmatched: error\n"
      "  quantize: {uint8: ['*/kernel'], float16: true}\n"
      "watches:\n"
      "  - {drop: /d1, serve: /s}\n"
      "  - {drop: /d2, serve: /s, quantize: {uint16: ['*']}}\n"
      "  - {drop: /d3, serve: /s, shard_size: 16, quantize: {}}\n"
      "  - {drop: /d4, serve: /s, groups: {by_prefix: 2}}\n"
      "  - {drop: /d5, serve: /s, unmatched: last, groups: single}\n");
  REQUIRE(c.watches.size() == 5);
  CHECK(DumpOptions(c.defaults) ==
        "shard=8192 groups=[|enc/*] unmatched=error uint8=*/kernel "
        "float16=true");
  CHECK(DumpOptions(c.watches[0].options) == DumpOptions(c.defaults));
  // quantize is replaced whole: the defaults' uint8 and fallthrough are gone.
  CHECK(DumpOptions(c.watches[1].options) == "shard=8192 groups=[|enc/*] unmatched=error uint16=*");
  CHECK(DumpOptions(c.watches[2].options) == "shard=16 groups=[|enc/*] unmatched=error");
  CHECK(DumpOptions(c.watches[3].options) ==
        "shard=8192 by_prefix=2 unmatched=error uint8=*/kernel float16=true");
  CHECK(DumpOptions(c.watches[4].options) == "shard=8192 single uint8=*/kernel float16=true");
}

TEST_CASE("bad daemon configs are errors at file:line:col") {
  const std::pair<const char*, const char*> rows[] = {
      // Top level.
      {"", "/etc/wd/d.yaml: no 'watches' key (a daemon config needs at least one watch)"},
      {"log_level: info\n",
       "/etc/wd/d.yaml:1:1: no 'watches' key (a daemon config needs at least one watch)"},
      {"- a\n", "/etc/wd/d.yaml:1:1: daemon config: expected a mapping, got a list"},
      {"watches: []\n",
       "/etc/wd/d.yaml:1:10: watches: expected a non-empty list of watches, "
       "got an empty list"},
      {"watches: /d\n",
       "/etc/wd/d.yaml:1:10: watches: expected a non-empty list of watches, got '/d'"},
      {"watches:\n", "/etc/wd/d.yaml:1:1: watches: no value"},
      {"watch: []\n",
       "/etc/wd/d.yaml:1:1: unknown key 'watch' in daemon config; did you mean 'watches'?"},
      {"folders: []\n",
       "/etc/wd/d.yaml:1:1: unknown key 'folders' in daemon config (expected state_dir, "
       "log_level, log_format, shutdown_timeout, defaults, watches, bundle_retries, "
       "bundle_retry_delay, max_parallel_publishes or s3)"},
      {"quantize: {uint8: true}\nwatches: [{drop: /d, serve: /s}]\n",
       "/etc/wd/d.yaml:1:1: unknown key 'quantize' in daemon config: pipeline settings go under "
       "`defaults` or in a watch"},
      {"log_level: verbose\n",
       "/etc/wd/d.yaml:1:12: log_level: expected trace, debug, info, warn or error, got 'verbose'"},
      {"log_format: [json]\n",
       "/etc/wd/d.yaml:1:13: log_format: expected text or json, got a list"},
      {"state_dir: ''\n", "/etc/wd/d.yaml:1:12: state_dir: empty path"},
      {"state_dir: {a: 1}\n",
       "/etc/wd/d.yaml:1:12: state_dir: expected a folder path, got a mapping"},
      {"shutdown_timeout: -1s\n",
       "/etc/wd/d.yaml:1:19: shutdown_timeout: invalid duration '-1s': must not be negative"},
      {"defaults: {shard_size: 0}\nwatches: [{drop: /d, serve: /s}]\n",
       "/etc/wd/d.yaml:1:24: shard_size: invalid size '0': must be at least 1 byte"},
      {"defaults: {drop: /x}\n",
       "/etc/wd/d.yaml:1:12: unknown key 'drop' in pipeline settings (expected shard_size, "
       "groups, unmatched, quantize or strict_patterns)"},
      {"watches: [{drop: /d, serve: /s}]\nwatches: [{drop: /e, serve: /s}]\n",
       "/etc/wd/d.yaml:2:1: daemon config: duplicate key 'watches'"},
      {"watches: [{drop: /d, serve: /s}]\n---\nwatches: []\n",
       "/etc/wd/d.yaml:2:1: expected one YAML document, found another here"},
      {"watches:\n  - {drop: /d, serve: /s, model: m}\n  - {drop: /e, serve: /s, model: m}\n",
       "/etc/wd/d.yaml:3:34: watch 2: model: 'm' is also watch 1's model in the same serve root "
       "/s; give each watch its own model or serve root"},
      {"watches: [{drop: /d, serve: /s}\n", "/etc/wd/d.yaml:2:1: end of sequence flow not found"},
      // A watch's own keys.
      {"watches:\n  - /d\n",
       "/etc/wd/d.yaml:2:5: watches: watch 1: expected a mapping with drop and serve, got '/d'"},
      {"watches:\n  - {drop: /d}\n", "/etc/wd/d.yaml:2:5: watch 1: no 'serve' key"},
      {"watches:\n  - {drop: /d, serve: /s}\n  - serve: /s\n",
       "/etc/wd/d.yaml:3:5: watch 2: no 'drop' key"},
      {"watches:\n  - {drop: /d, serve: /s, dorp: /e}\n",
       "/etc/wd/d.yaml:2:27: unknown key 'dorp' in a watch; did you mean 'drop'?"},
      {"shutdwn_tmeot: 1s\n",
       "/etc/wd/d.yaml:1:1: unknown key 'shutdwn_tmeot' in daemon config (expected state_dir, "
       "log_level, log_format, shutdown_timeout, defaults, watches, bundle_retries, "
       "bundle_retry_delay, max_parallel_publishes or s3)"},
      {"watches:\n  - {drop: /d, serve: /s, drop: /e}\n",
       "/etc/wd/d.yaml:2:27: watch 1: duplicate key 'drop'"},
      {"watches:\n  - drop: /d\n    serve:\n", "/etc/wd/d.yaml:3:5: serve: no value"},
      {"watches:\n  - {drop: [/d], serve: /s}\n",
       "/etc/wd/d.yaml:2:12: drop: expected a folder path, got a list"},
      {"watches:\n  - {drop: /d, serve: /s, settle: 2 sec}\n",
       "/etc/wd/d.yaml:2:35: settle: invalid duration '2 sec': unknown unit 'sec' (expected ms, "
       "s, m, h or d; a bare number is seconds)"},
      {"watches:\n  - {drop: /d, serve: /s, rescan: 0}\n",
       "/etc/wd/d.yaml:2:35: rescan: must be at least 1s, got '0'"},
      {"watches:\n  - {drop: /d, serve: /s, rescan: 999ms}\n",
       "/etc/wd/d.yaml:2:35: rescan: must be at least 1s, got '999ms'"},
      {"watches:\n  - {drop: /d, serve: /s, keep_versions: 0}\n",
       "/etc/wd/d.yaml:2:42: keep_versions: expected a whole number >= 1, got '0'"},
      {"watches:\n  - {drop: /d, serve: /s, keep_versions: 2.5}\n",
       "/etc/wd/d.yaml:2:42: keep_versions: expected a whole number >= 1, got '2.5'"},
      {"watches:\n  - {drop: /d, serve: /s, on_success: keep}\n",
       "/etc/wd/d.yaml:2:39: on_success: expected archive or delete, got 'keep'"},
      {"watches:\n  - {drop: /d, serve: /s, shard_size: 1.5MiB}\n",
       "/etc/wd/d.yaml:2:39: shard_size: invalid size '1.5MiB': fractions are not allowed; use "
       "a whole number of a smaller unit (e.g. 1536KiB)"},
      {"watches:\n  - {drop: /d, serve: /s, quantize: {uint8: true, float16: true}}\n",
       "/etc/wd/d.yaml:2:60: quantize: float16: only one dtype may be true (the fallthrough), "
       "and uint8 already is"},
      // Model templates.
      {"watches:\n  - {drop: /d, serve: /s, model: \"{stem}/x\"}\n",
       "/etc/wd/d.yaml:2:34: model: model template '{stem}/x': '/' is not allowed (a model name "
       "holds letters, digits, '.', '_' and '-'; placeholders are {stem}, {name} and {drop})"},
      {"watches:\n  - {drop: /d, serve: /s, model: \"{steem}\"}\n",
       "/etc/wd/d.yaml:2:34: model: model template '{steem}': unknown placeholder '{steem}' "
       "(expected {stem}, {name} or {drop})"},
      {"watches:\n  - {drop: /d, serve: /s, model: \"{stem\"}\n",
       "/etc/wd/d.yaml:2:34: model: model template '{stem': '{' without a closing '}'"},
      {"watches:\n  - {drop: /d, serve: /s, model: ''}\n",
       "/etc/wd/d.yaml:2:34: model: model template '' is empty"},
      {"watches:\n  - {drop: /d, serve: /s, model: '.{stem}'}\n",
       "/etc/wd/d.yaml:2:34: model: '.{stem}' expands to an invalid name: model name '.x' must "
       "not start with '.'"},
      {"watches:\n  - {drop: '/in box', serve: /s, model: '{drop}'}\n",
       "/etc/wd/d.yaml:2:41: model: '{drop}' expands to an invalid name: model name 'in box' may "
       "only hold letters, digits, '.', '_' and '-'"},
      {"watches:\n  - {drop: /d, serve: /s, model: [a]}\n",
       "/etc/wd/d.yaml:2:34: model: expected a template such as {stem}, got a list"},
      // Hooks.
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_publish: /bin/notify}}\n",
       "/etc/wd/d.yaml:2:47: hooks: on_publish: expected a non-empty list [program, args...] "
       "(run without a shell), got '/bin/notify'"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_failure: []}}\n",
       "/etc/wd/d.yaml:2:47: hooks: on_failure: expected a non-empty list [program, args...] "
       "(run without a shell), got an empty list"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_publish: ['', x]}}\n",
       "/etc/wd/d.yaml:2:48: hooks: on_publish: the program is empty"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_publish: [x, [y]]}}\n",
       "/etc/wd/d.yaml:2:51: hooks: on_publish: expected a string, got a list"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_publish: [x, '{modle}']}}\n",
       "/etc/wd/d.yaml:2:51: hooks: on_publish: unknown placeholder '{modle}' (expected {model}, "
       "{version}, {dir}, {manifest}, {url}, {bundle} or {error})"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {timeout: 0s}}\n",
       "/etc/wd/d.yaml:2:44: hooks: timeout: must be more than 0, got '0s'"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_succes: [x]}}\n",
       "/etc/wd/d.yaml:2:35: unknown key 'on_succes' in hooks (expected on_publish, on_failure or "
       "timeout)"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: {on_publsh: [x]}}\n",
       "/etc/wd/d.yaml:2:35: unknown key 'on_publsh' in hooks; did you mean 'on_publish'?"},
      {"watches:\n  - {drop: /d, serve: /s, hooks: [x]}\n",
       "/etc/wd/d.yaml:2:34: hooks: expected a mapping, got a list"},
      // Folders across watches.
      {"watches:\n  - {drop: /d, serve: /s}\n  - {drop: /d/, serve: /t}\n",
       "/etc/wd/d.yaml:3:12: watch 2: drop: /d is already watched by watch 1"},
      {"watches:\n  - {drop: drop, serve: /s}\n  - {drop: /etc/wd/x/../drop, serve: /t}\n",
       "/etc/wd/d.yaml:3:12: watch 2: drop: /etc/wd/drop is already watched by watch 1"},
      {"watches:\n  - {drop: /s, serve: /s}\n",
       "/etc/wd/d.yaml:2:12: watch 1: drop: /s is this watch's serve root /s"},
      {"watches:\n  - {drop: /s/in, serve: /s}\n",
       "/etc/wd/d.yaml:2:12: watch 1: drop: /s/in is inside this watch's serve root /s"},
      {"watches:\n  - {drop: /d, serve: /s}\n  - {drop: /s/in, serve: /t}\n",
       "/etc/wd/d.yaml:3:12: watch 2: drop: /s/in is inside watch 1's serve root /s"},
      {"watches:\n  - {drop: /d, serve: /d/out}\n",
       "/etc/wd/d.yaml:2:23: watch 1: serve: /d/out is inside this watch's drop folder /d"},
      {"watches:\n  - {drop: /d, serve: /s}\n  - {drop: /e, serve: /d/.weightdrop}\n",
       "/etc/wd/d.yaml:3:23: watch 2: serve: /d/.weightdrop is inside watch 1's drop folder /d"},
      {"watches:\n  - {drop: /, serve: /s}\n",
       "/etc/wd/d.yaml:2:22: watch 1: serve: /s is inside this watch's drop folder /"},
      {"state_dir: drop/state\nwatches: [{drop: drop, serve: /s}]\n",
       "/etc/wd/d.yaml:1:12: state_dir: /etc/wd/drop/state is inside watch 1's drop folder "
       "/etc/wd/drop"},
  };
  for (const auto& [yaml, error] : rows) {
    const std::string yaml_text = yaml;
    CAPTURE(yaml_text);
    Result<DaemonConfig> config = ParseDaemonConfig(yaml, kFile);
    REQUIRE_FALSE(config.ok());
    CHECK(config.status().kind() == ErrorKind::kConfig);
    CHECK(config.status().message() == error);
  }
}

TEST_CASE("relative paths are resolved against the config file's folder") {
  test::TempDir dir;
  test::WriteFile(dir / "conf/wd.yaml",
                  "state_dir: state\nwatches:\n  - {drop: ./in/./, serve: ../www/models}\n"
                  "  - {drop: /abs/in, serve: sub/../srv}\n");
  Result<DaemonConfig> c = LoadDaemonConfig(dir / "conf/wd.yaml");
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  CHECK(c->source == dir / "conf/wd.yaml");
  CHECK(c->state_dir == dir / "conf/state");
  REQUIRE(c->watches.size() == 2);
  CHECK(c->watches[0].drop == dir / "conf/in");
  CHECK(c->watches[0].serve == dir / "www/models");
  CHECK(c->watches[1].drop == "/abs/in");
  CHECK(c->watches[1].serve == dir / "conf/srv");

  // A config named without a folder is relative to the working folder.
  char cwd[4096];
  REQUIRE(::getcwd(cwd, sizeof cwd) != nullptr);
  const DaemonConfig bare = MustParse("watches: [{drop: in, serve: out}]", "wd.yaml");
  CHECK(bare.source == std::string(cwd) + "/wd.yaml");
  CHECK(bare.watches[0].drop == std::string(cwd) + "/in");
}

TEST_CASE("an unreadable daemon config is a config error naming the path") {
  test::TempDir dir;
  Result<DaemonConfig> missing = LoadDaemonConfig(dir / "nope.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().kind() == ErrorKind::kConfig);
  CHECK(missing.status().message() ==
        "cannot read config " + (dir / "nope.yaml") + ": No such file or directory");
  Result<DaemonConfig> folder = LoadDaemonConfig(dir.path());
  REQUIRE_FALSE(folder.ok());
  CHECK(folder.status().message() == "cannot read config " + dir.path() + ": not a regular file");
  test::WriteFile(dir / "bad.yaml", "watches:\n  - {drop: d, serve: s, settle: soon}\n");
  Result<DaemonConfig> bad = LoadDaemonConfig(dir / "bad.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() ==
        dir /
            "bad.yaml:2:33: settle: invalid duration 'soon': expected a number and a unit (ms, "
            "s, m, h or d), e.g. 500ms, 2s or 1.5m");
}

TEST_CASE("durations take ms, s, m and h, decimals, and bare seconds") {
  const std::pair<const char*, int64_t> ok[] = {
      {"0", 0},
      {"30", 30000},
      {"500ms", 500},
      {"2s", 2000},
      {"1m", 60000},
      {"1h", 3600000},
      {"30d", 2592000000},
      {"1.5s", 1500},
      {"0.25m", 15000},
      {"2.5", 2500},
      {"0.001s", 1},
      {"1.0ms", 1},
      {"2 s", 2000},
      {"007s", 7000},
      {"8760h", 8760LL * 3600 * 1000},
      {"0.5h", 1800000},
      {"1.500000000000s", 1500},
  };
  for (const auto& [text, ms] : ok) {
    const std::string duration = text;
    CAPTURE(duration);
    Result<Millis> d = ParseDuration(text);
    REQUIRE_MESSAGE(d.ok(), d.status().message());
    CHECK(d->count() == ms);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"", "empty"},
      {"-1s", "must not be negative"},
      {"+1s", "expected a number and a unit"},
      {"s", "expected a number and a unit"},
      {".5s", "expected a number and a unit"},
      {"1.s", "expected a number and a unit"},
      {"1.5ms", "finer than a millisecond"},
      {"0.0001s", "finer than a millisecond"},
      {"1.0000000001h", "finer than a millisecond"},
      {"1w", "unknown unit 'w'"},
      {"366d", "too long (at most 8760h)"},
      {"1S", "unknown unit 'S'"},
      {"1 ", "unknown unit ' '"},
      {"1  s", "unknown unit ' s'"},
      {"1e3", "unknown unit 'e3'"},
      {"8761h", "too long (at most 8760h)"},
      {"9999999999999999999999s", "too long (at most 8760h)"},
      // 12 digits times a day's milliseconds overflows int64 (found by the fuzzer).
      {"733333333333d", "too long (at most 8760h)"},
      {"999999999999h", "too long (at most 8760h)"},
      {"999999999999.5d", "too long (at most 8760h)"},
  };
  for (const auto& [text, why] : bad) {
    const std::string duration = text;
    CAPTURE(duration);
    Result<Millis> d = ParseDuration(text);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().kind() == ErrorKind::kConfig);
    CHECK(d.status().message().find("invalid duration '" + duration + "': ") == 0);
    CHECK(d.status().message().find(why) != std::string::npos);
  }
}

TEST_CASE("model templates expand from the entry name and drop folder") {
  struct Row {
    const char* tmpl;
    const char* entry;
    const char* drop;
    const char* model;
  };
  const Row rows[] = {
      {"{stem}", "resnet.npz", "/d", "resnet"},
      {"{stem}", "resnet.npy", "/d", "resnet"},
      {"{stem}", "resnet", "/d", "resnet"},  // a bundle folder
      {"{stem}", "a.b.npz", "/d", "a.b"},
      {"{stem}", "x.npz.npz", "/d", "x.npz"},
      {"{stem}", "x.NPZ", "/d", "x.NPZ"},
      {"{name}", "resnet.npz", "/d", "resnet.npz"},
      {"{drop}", "resnet.npz", "/srv/vision-models", "vision-models"},
      {"{drop}", "resnet.npz", "/srv/vision/", "vision"},
      {"{drop}-{stem}_v2", "resnet.npz", "/srv/in", "in-resnet_v2"},
      {"fixed", "anything.npz", "/d", "fixed"},
      {"{stem}{stem}", "a.npy", "/d", "aa"},
  };
  for (const Row& row : rows) {
    const std::string tmpl = row.tmpl, entry = row.entry;
    CAPTURE(tmpl);
    CAPTURE(entry);
    Result<std::string> model = ExpandModelTemplate(row.tmpl, row.entry, row.drop);
    REQUIRE_MESSAGE(model.ok(), model.status().message());
    CHECK(*model == row.model);
  }
}

TEST_CASE("a model template that gives a bad name is the bundle's fault") {
  struct Row {
    const char* tmpl;
    const char* entry;
    ErrorKind kind;
    const char* error;
  };
  const Row rows[] = {
      {"{stem}", "my model.npz", ErrorKind::kBundle,
       "my model.npz: model name 'my model' may only hold letters, digits, '.', '_' and '-' (from "
       "model template '{stem}')"},
      {"{stem}", ".npz", ErrorKind::kBundle,
       ".npz: model name '.npz' must not start with '.' (from model template '{stem}')"},
      {"{name}", "caf\xc3\xa9.npz", ErrorKind::kBundle,
       "caf\xc3\xa9.npz: model name 'caf\xc3\xa9.npz' may only hold letters, digits, '.', '_' and "
       "'-' (from model template '{name}')"},
      {"{stem}/{stem}", "a.npz", ErrorKind::kConfig,
       "model template '{stem}/{stem}': '/' is not allowed (a model name holds letters, digits, "
       "'.', '_' and '-'; placeholders are {stem}, {name} and {drop})"},
      {"{model}", "a.npz", ErrorKind::kConfig,
       "model template '{model}': unknown placeholder '{model}' (expected {stem}, {name} or "
       "{drop})"},
  };
  for (const Row& row : rows) {
    const std::string tmpl = row.tmpl;
    CAPTURE(tmpl);
    Result<std::string> model = ExpandModelTemplate(row.tmpl, row.entry, "/d");
    REQUIRE_FALSE(model.ok());
    CHECK(model.status().kind() == row.kind);
    CHECK(model.status().message() == row.error);
  }
}

TEST_CASE("a file with a daemon-only top-level key, or a typo of one, is a daemon config") {
  const std::pair<const char*, bool> rows[] = {
      {"watches: [{drop: /d, serve: /s}]", true},
      {"defaults: {}\nwatches:\n", true},
      {"watches: oops", true},  // still meant as one: check-config reports the error
      {"defaults: {watches: 1}", true},
      {"state_dir: /var/lib/wd\nwatch: []", true},
      {"log_level: info", true},
      {"max_parallel_publishes: 2", true},
      {"shard_size: 4MiB\nbundle_retries: 2", true},
      // Typos of a daemon key and of no pipeline key.
      {"watch: [{drop: /d, serve: /s}]", true},
      {"Watches: []", true},
      {"stat_dir: /x", true},
      {"shutdown_timout: 1s", true},
      {"shard_size: 4MiB", false},
      {"quantise: {uint8: true}", false},
      {"shard_size: 4MiB\nfoo: 1", false},
      {"", false},
      {"- watches", false},
      {"watches: [unclosed", false},
      {",", false},
  };
  for (const auto& [yaml, daemon] : rows) {
    const std::string yaml_text = yaml;
    CAPTURE(yaml_text);
    CHECK(LooksLikeDaemonConfig(yaml) == daemon);
  }
}

TEST_CASE("the example in docs/configuration.md is a valid daemon config") {
  const std::string doc = test::ReadFile(test::SourcePath("../docs/configuration.md"));
  const size_t section = doc.find("## Daemon configuration");
  REQUIRE(section != std::string::npos);
  const size_t begin = doc.find("```yaml\n", section);
  REQUIRE(begin != std::string::npos);
  const size_t end = doc.find("```", begin + 8);
  REQUIRE(end != std::string::npos);
  const std::string example = doc.substr(begin + 8, end - begin - 8);
  CHECK(LooksLikeDaemonConfig(example));
  const DaemonConfig c = MustParse(example, "/etc/weightdrop/weightdrop.yaml");
  REQUIRE(c.watches.size() == 2);
  CHECK(c.watches[0].hooks.on_publish.size() == 4);
  CHECK(c.watches[1].options.quantize.fallthrough == QuantDtype::kUint8);
}

TEST_CASE("retries of an unreadable bundle are settings with defaults") {
  auto d = ParseDaemonConfig("watches: [{drop: /d, serve: /s}]\n", "/etc/wd/d.yaml");
  REQUIRE(d.ok());
  CHECK(d->bundle_retries == 5);
  CHECK(d->bundle_retry_delay.count() == 10000);
  auto c = ParseDaemonConfig(
      "bundle_retries: 2\nbundle_retry_delay: 250ms\nwatches: [{drop: /d, serve: /s}]\n",
      "/etc/wd/d.yaml");
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  CHECK(c->bundle_retries == 2);
  CHECK(c->bundle_retry_delay.count() == 250);
  auto bad =
      ParseDaemonConfig("bundle_retries: 0\nwatches: [{drop: /d, serve: /s}]\n", "/etc/wd/d.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("bundle_retries: expected a whole number >= 1") !=
        std::string::npos);
}

TEST_CASE("done/ and failed/ keep an age, a count, or forever") {
  auto parse = [](const std::string& keep) {
    return ParseDaemonConfig("watches: [{drop: /d, serve: /s, " + keep + "}]\n", "/etc/wd/d.yaml");
  };
  auto dflt = parse("model: m");
  REQUIRE(dflt.ok());
  CHECK(dflt->watches[0].keep_done.max_age.count() == 2592000000);
  CHECK(dflt->watches[0].keep_failed.max_count == 0);
  auto age = parse("keep_done: 12h, keep_failed: 500");
  REQUIRE_MESSAGE(age.ok(), age.status().message());
  CHECK(age->watches[0].keep_done.max_age.count() == 43200000);
  CHECK(age->watches[0].keep_failed.max_count == 500);
  CHECK(age->watches[0].keep_failed.max_age.count() == 0);
  auto forever = parse("keep_done: forever");
  REQUIRE(forever.ok());
  CHECK(forever->watches[0].keep_done.max_age.count() == 0);
  CHECK(forever->watches[0].keep_done.max_count == 0);
  auto bad = parse("keep_done: [1]");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("keep_done: expected an age such as 30d, a count such as 500, "
                                    "or forever, got a list") != std::string::npos);
  CHECK_FALSE(parse("keep_failed: 0").ok());
  CHECK_FALSE(parse("keep_failed: 500ms").ok());
}

TEST_CASE("max_parallel_publishes defaults to the cores, 1 to 12") {
  auto d = ParseDaemonConfig("watches: [{drop: /d, serve: /s}]\n", "/etc/wd/d.yaml");
  REQUIRE(d.ok());
  CHECK(d->max_parallel_publishes >= 1);
  CHECK(d->max_parallel_publishes <= 12);
  auto one = ParseDaemonConfig("max_parallel_publishes: 1\nwatches: [{drop: /d, serve: /s}]\n",
                               "/etc/wd/d.yaml");
  REQUIRE(one.ok());
  CHECK(one->max_parallel_publishes == 1);
  CHECK_FALSE(ParseDaemonConfig("max_parallel_publishes: 13\nwatches: [{drop: /d, serve: /s}]\n",
                                "/etc/wd/d.yaml")
                  .ok());
  CHECK_FALSE(ParseDaemonConfig("max_parallel_publishes: 0\nwatches: [{drop: /d, serve: /s}]\n",
                                "/etc/wd/d.yaml")
                  .ok());
}

TEST_CASE("quantize patterns that can only conflict are errors in defaults and in watches") {
  const std::pair<const char*, const char*> rows[] = {
      {"defaults:\n  quantize: {uint8: ['*/kernel'], float16: '*'}\n"
       "watches: [{drop: /d, serve: /s}]\n",
       "/etc/wd/d.yaml:2:22: quantize: uint8 pattern '*/kernel' can never apply: float16 "
       "pattern '*' also matches every name it matches, and a weight matched by two dtypes is "
       "refused; to quantize every other float weight as float16, write `float16: true` (the "
       "fallthrough; --quantize-rest float16 on the command line) instead of '*'"},
      {"watches:\n  - {drop: /d, serve: /s}\n"
       "  - {drop: /e, serve: /s, quantize: {uint8: 'enc/*', uint16: 'enc*'}}\n",
       "/etc/wd/d.yaml:3:45: quantize: uint8 pattern 'enc/*' can never apply: uint16 pattern "
       "'enc*' also matches every name it matches, and a weight matched by two dtypes is "
       "refused"},
  };
  for (const auto& [yaml, error] : rows) {
    const std::string yaml_text = yaml;
    CAPTURE(yaml_text);
    Result<DaemonConfig> config = ParseDaemonConfig(yaml, kFile);
    REQUIRE_FALSE(config.ok());
    CHECK(config.status().message() == error);
  }
}

TEST_CASE("doubtful patterns are warnings, once where they are written") {
  // The defaults' overlap is said once, not again for the watch inheriting it.
  const DaemonConfig c = MustParse(
      "defaults:\n  quantize: {uint8: '*/kernel', float16: 'dense*'}\n"
      "watches:\n  - {drop: /d, serve: /s}\n"
      "  - drop: /e\n    serve: /s\n    groups: [{match: '*'}, {match: 'enc/*'}]\n");
  const std::vector<std::string> want = {
      "/etc/wd/d.yaml:2:42: quantize: uint8 '*/kernel' and float16 'dense*' both match names "
      "such as 'dense/kernel'; a weight named so would be refused",
      "/etc/wd/d.yaml:7:28: groups: group 2 can never receive a weight: every name its patterns "
      "match, an earlier group's patterns match first (a weight joins the first group it "
      "matches)"};
  CHECK(c.warnings.size() == want.size());
  for (size_t i = 0; i < want.size() && i < c.warnings.size(); ++i) CHECK(c.warnings[i] == want[i]);
  CHECK(MustParse("watches: [{drop: /d, serve: /s}]\n").warnings.empty());
}

}  // namespace
}  // namespace wd
