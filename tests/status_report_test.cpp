#include "daemon/status_report.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace wd {
namespace {

constexpr int64_t kStarted = 1795888800;  // 2026-11-28T18:00:00Z

// Two watches, a model with a success and one that has only failed, and six
// publish durations chosen to be exact in binary (so the sum prints exactly).
DaemonStatus Fixture() {
  DaemonStatus s;
  s.pid = 4242;
  s.started_unix = kStarted;
  s.config = "/etc/weightdrop/config.yaml";
  s.watches = {{"/srv/drop/a", "/srv/serve", 2, 1, {"notes.txt", "UP.NPZ"}, {}},
               {"/srv/drop/b", "/srv/serve", 1, 0, {}, {"locked: rename: Permission denied"}}};
  s.publishing = {{.bundle = "/srv/drop/a/big.npz",
                   .model = "big",
                   .bytes_done = 1048576,
                   .bytes_total = 4194304,
                   .elapsed_seconds = 2.5}};
  ModelStatus mnist;
  mnist.model = "mnist";
  mnist.serve = "/srv/serve";
  mnist.current_version = 3;
  mnist.last_result = "published";
  mnist.last_bundle = "/srv/drop/a/.weightdrop/done/mnist.npz";
  mnist.last_success_unix = kStarted + 600;
  mnist.publishes = 3;
  mnist.failures = 1;
  mnist.unchanged = 2;
  mnist.bytes = 1048576;
  ModelStatus resnet;
  resnet.model = "resnet";
  resnet.serve = "/srv/serve";
  resnet.last_result = "failed";
  resnet.last_error = "resnet.npz: member 'fc/w.npy': truncated";
  resnet.last_bundle = "/srv/drop/b/.weightdrop/failed/resnet.npz";
  resnet.failures = 2;
  s.models["/srv/serve/mnist"] = mnist;
  s.models["/srv/serve/resnet"] = resnet;
  for (double d : {0.03125, 0.25, 0.375, 1.0, 7.5, 400.0}) s.RecordDuration(d);
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("status.json has the contract's fields in order, times in RFC 3339 UTC") {
  DaemonStatus s;
  s.pid = 7;
  s.started_unix = kStarted;
  s.config = "/etc/wd.yaml";
  s.state = "reloading";
  s.watches = {{"/d", "/s", 1, 0, {"notes.txt"}, {}}};
  ModelStatus m;
  m.model = "m";
  m.serve = "/s";
  m.last_result = "retrying";
  m.last_error = "/s/m/.staging/v1: No space left on device";
  m.failures = 1;
  s.models["/s/m"] = m;
  s.publishing = {{.bundle = "/d/big.npz",
                   .model = "big",
                   .bytes_done = 1048576,
                   .bytes_total = 4194304,
                   .elapsed_seconds = 2.5}};
  const std::string expected = R"({
  "pid": 7,
  "started": "2026-11-28T18:00:00Z",
  "config": "/etc/wd.yaml",
  "state": "reloading",
  "stopped": null,
  "watches": [
    {
      "drop": "/d",
      "serve": "/s",
      "queued": 1,
      "in_flight": 0,
      "ignored": [
        "notes.txt"
      ],
      "unclaimable": []
    }
  ],
  "models": {
    "/s/m": {
      "model": "m",
      "serve": "/s",
      "current_version": 0,
      "last_result": "retrying",
      "last_error": "/s/m/.staging/v1: No space left on device",
      "last_bundle": "",
      "last_success": null,
      "publishes": 0,
      "failures": 1,
      "unchanged": 0,
      "bytes": 0
    }
  },
  "publishing": [
    {
      "bundle": "/d/big.npz",
      "model": "big",
      "bytes_done": 1048576,
      "bytes_total": 4194304,
      "elapsed_seconds": 2.5
    }
  ],
  "totals": {
    "publishes": 0,
    "failures": 1,
    "unchanged": 0,
    "bytes": 0
  }
}
)";
  CHECK(StatusToJson(s) == expected);
}

TEST_CASE("status.json round-trips every field it carries") {
  const DaemonStatus s = Fixture();
  const Result<DaemonStatus> back = StatusFromJson(StatusToJson(s), "status.json");
  REQUIRE(back.ok());
  CHECK(back->pid == s.pid);
  CHECK(back->started_unix == s.started_unix);
  CHECK(back->config == s.config);
  CHECK(back->state == s.state);
  REQUIRE(back->watches.size() == s.watches.size());
  for (size_t i = 0; i < s.watches.size(); ++i) {
    CHECK(back->watches[i].drop == s.watches[i].drop);
    CHECK(back->watches[i].serve == s.watches[i].serve);
    CHECK(back->watches[i].queued == s.watches[i].queued);
    CHECK(back->watches[i].in_flight == s.watches[i].in_flight);
    CHECK(back->watches[i].ignored == s.watches[i].ignored);
  }
  REQUIRE(back->publishing.size() == s.publishing.size());
  for (size_t i = 0; i < s.publishing.size(); ++i) {
    CHECK(back->publishing[i].bundle == s.publishing[i].bundle);
    CHECK(back->publishing[i].model == s.publishing[i].model);
    CHECK(back->publishing[i].bytes_done == s.publishing[i].bytes_done);
    CHECK(back->publishing[i].bytes_total == s.publishing[i].bytes_total);
    CHECK(back->publishing[i].elapsed_seconds == s.publishing[i].elapsed_seconds);
  }
  REQUIRE(back->models.size() == s.models.size());
  for (const auto& [key, m] : s.models) {
    CAPTURE(key);
    REQUIRE(back->models.count(key) == 1);
    const ModelStatus& b = back->models.at(key);
    CHECK(b.model == m.model);
    CHECK(b.serve == m.serve);
    CHECK(b.current_version == m.current_version);
    CHECK(b.last_result == m.last_result);
    CHECK(b.last_error == m.last_error);
    CHECK(b.last_bundle == m.last_bundle);
    CHECK(b.last_success_unix == m.last_success_unix);
    CHECK(b.publishes == m.publishes);
    CHECK(b.failures == m.failures);
    CHECK(b.unchanged == m.unchanged);
    CHECK(b.bytes == m.bytes);
  }
  // And the text is a fixed point.
  CHECK(StatusToJson(*back) == StatusToJson(s));
}

TEST_CASE("status.json replaces bytes that are not UTF-8 instead of throwing") {
  DaemonStatus s;
  ModelStatus m;
  m.model = "m";
  m.last_bundle = "/d/bad\xff.npz";
  s.models["/s/m"] = m;
  const std::string json = StatusToJson(s);
  CHECK(json.find("/d/bad\xef\xbf\xbd.npz") != std::string::npos);  // U+FFFD
  CHECK(StatusFromJson(json, "status.json").ok());
}

TEST_CASE("prometheus text for a fixture matches the 0.0.4 exposition format exactly") {
  // Written out by hand: one HELP and TYPE per family, counters in _total,
  // cumulative histogram buckets (le is "<="), +Inf bucket == _count.
  const std::string expected =
      R"(# HELP weightdrop_publishes_total New model versions published.
# TYPE weightdrop_publishes_total counter
weightdrop_publishes_total{model="mnist",serve="/srv/serve"} 3
weightdrop_publishes_total{model="resnet",serve="/srv/serve"} 0
# HELP weightdrop_failures_total Bundles that failed to publish.
# TYPE weightdrop_failures_total counter
weightdrop_failures_total{model="mnist",serve="/srv/serve"} 1
weightdrop_failures_total{model="resnet",serve="/srv/serve"} 2
# HELP weightdrop_unchanged_total Bundles identical to the current version (nothing published).
# TYPE weightdrop_unchanged_total counter
weightdrop_unchanged_total{model="mnist",serve="/srv/serve"} 2
weightdrop_unchanged_total{model="resnet",serve="/srv/serve"} 0
# HELP weightdrop_published_bytes_total Weight shard bytes published.
# TYPE weightdrop_published_bytes_total counter
weightdrop_published_bytes_total{model="mnist",serve="/srv/serve"} 1048576
weightdrop_published_bytes_total{model="resnet",serve="/srv/serve"} 0
# HELP weightdrop_publish_duration_seconds Time from claiming a bundle to a durable publish.
# TYPE weightdrop_publish_duration_seconds histogram
weightdrop_publish_duration_seconds_bucket{le="0.05"} 1
weightdrop_publish_duration_seconds_bucket{le="0.1"} 1
weightdrop_publish_duration_seconds_bucket{le="0.25"} 2
weightdrop_publish_duration_seconds_bucket{le="0.5"} 3
weightdrop_publish_duration_seconds_bucket{le="1"} 4
weightdrop_publish_duration_seconds_bucket{le="2.5"} 4
weightdrop_publish_duration_seconds_bucket{le="5"} 4
weightdrop_publish_duration_seconds_bucket{le="10"} 5
weightdrop_publish_duration_seconds_bucket{le="30"} 5
weightdrop_publish_duration_seconds_bucket{le="60"} 5
weightdrop_publish_duration_seconds_bucket{le="120"} 5
weightdrop_publish_duration_seconds_bucket{le="300"} 5
weightdrop_publish_duration_seconds_bucket{le="+Inf"} 6
weightdrop_publish_duration_seconds_sum 409.15625
weightdrop_publish_duration_seconds_count 6
# HELP weightdrop_queue_depth Ready bundles waiting for their model's turn.
# TYPE weightdrop_queue_depth gauge
weightdrop_queue_depth 3
# HELP weightdrop_last_success_timestamp_seconds Unix time of the model's last successful run.
# TYPE weightdrop_last_success_timestamp_seconds gauge
weightdrop_last_success_timestamp_seconds{model="mnist",serve="/srv/serve"} 1795889400
# HELP weightdrop_current_version Version the model's current pointer names (0: none yet).
# TYPE weightdrop_current_version gauge
weightdrop_current_version{model="mnist",serve="/srv/serve"} 3
weightdrop_current_version{model="resnet",serve="/srv/serve"} 0
# HELP weightdrop_start_time_seconds Unix time the daemon started.
# TYPE weightdrop_start_time_seconds gauge
weightdrop_start_time_seconds 1795888800
)";
  CHECK(StatusToPrometheus(Fixture()) == expected);
}

TEST_CASE("prometheus text without models has only the daemon-wide families") {
  DaemonStatus s;
  s.started_unix = kStarted;
  const std::string text = StatusToPrometheus(s);
  CHECK(text.find("weightdrop_publishes_total") == std::string::npos);
  CHECK(text.find("weightdrop_current_version") == std::string::npos);
  CHECK(text.find("weightdrop_last_success_timestamp_seconds") == std::string::npos);
  CHECK(text.find("weightdrop_publish_duration_seconds_bucket{le=\"+Inf\"} 0\n") !=
        std::string::npos);
  CHECK(text.find("weightdrop_publish_duration_seconds_sum 0\n") != std::string::npos);
  CHECK(text.find("weightdrop_queue_depth 0\n") != std::string::npos);
  CHECK(text.find("weightdrop_start_time_seconds 1795888800\n") != std::string::npos);
}

TEST_CASE("prometheus label values escape backslash, double quote and newline") {
  struct Row {
    std::string model;
    std::string label;
  };
  const Row rows[] = {
      {"plain", R"(model="plain")"},
      {R"(a"b)", R"(model="a\"b")"},
      {R"(a\b)", R"(model="a\\b")"},
      {"a\nb", R"(model="a\nb")"},
      {"\\\"\n", R"(model="\\\"\n")"},
      {"tab\there {x}", "model=\"tab\there {x}\""},  // only the three are escaped
  };
  for (const Row& row : rows) {
    CAPTURE(row.model);
    DaemonStatus s;
    ModelStatus m;
    m.model = row.model;
    m.serve = "C:\\srv";
    s.models["/s/" + row.model] = m;
    const std::string text = StatusToPrometheus(s);
    const std::string sample = "weightdrop_publishes_total{" + row.label + R"(,serve="C:\\srv"} 0)";
    CHECK(text.find(sample + "\n") != std::string::npos);
  }
}

// Checks the structure the 0.0.4 parser relies on: every sample line is
// `name{labels} value`, each family has one HELP and one TYPE before its
// samples, samples of a family are contiguous, counters end in _total and
// histogram buckets are cumulative with +Inf equal to _count.
void CheckExposition(const std::string& text) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? ([-+0-9.eE]+|NaN|\+Inf)$)");
  static const std::regex kLabels(
      R"(^\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\}$)");
  static const std::regex kComment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::map<std::string, std::string> types;
  std::set<std::string> helps, closed;
  std::string family;
  double last_bucket = -1;
  for (const std::string& line : Lines(text)) {
    CAPTURE(line);
    std::smatch m;
    if (line.rfind("#", 0) == 0) {
      REQUIRE(std::regex_match(line, m, kComment));
      if (m[1] == "HELP") {
        CHECK(helps.insert(m[2]).second);
      } else {
        CHECK(types.emplace(m[2], m[3]).second);
        CHECK(std::regex_match(m[3].str(), std::regex("counter|gauge|histogram")));
        if (m[3] == "counter") CHECK(m[2].str().size() > 6);
        if (m[3] == "counter") CHECK(m[2].str().substr(m[2].str().size() - 6) == "_total");
      }
      if (!family.empty() && family != m[2]) closed.insert(family);
      family = m[2];
      CHECK(closed.count(family) == 0);
      last_bucket = -1;
      continue;
    }
    REQUIRE(std::regex_match(line, m, kSample));
    if (m[2].matched) CHECK(std::regex_match(m[2].str(), kLabels));
    const std::string name = m[1];
    REQUIRE(types.count(family) == 1);
    CHECK(helps.count(family) == 1);
    if (types[family] == "histogram") {
      CHECK((name == family + "_bucket" || name == family + "_sum" || name == family + "_count"));
      if (name == family + "_bucket") {
        const double v = std::stod(m[3]);
        CHECK(v >= last_bucket);  // cumulative
        last_bucket = v;
      }
      if (name == family + "_count") CHECK(std::stod(m[3]) == last_bucket);
    } else {
      CHECK(name == family);
    }
  }
}

TEST_CASE("every prometheus line is valid exposition text") {
  CheckExposition(StatusToPrometheus(Fixture()));
  CheckExposition(StatusToPrometheus(DaemonStatus()));
  DaemonStatus odd = Fixture();
  odd.models["/s/q"].model = "q\"\\\nx";
  odd.models["/s/q"].serve = "/s";
  odd.RecordDuration(1e9);
  CheckExposition(StatusToPrometheus(odd));
}

TEST_CASE("publish durations land in the first bucket whose bound is >= the value") {
  struct Row {
    double seconds;
    size_t bucket;  // index into duration_counts; 12 is +Inf
  };
  const Row rows[] = {
      {0.0, 0},    {0.05, 0},   {0.0500001, 1}, {0.1, 1},  {0.25, 2}, {0.3, 3},
      {1.0, 4},    {2.5, 5},    {4.9, 6},       {10.0, 7}, {30.0, 8}, {59.0, 9},
      {120.0, 10}, {300.0, 11}, {300.5, 12},    {1e6, 12}, {-1.0, 0},  // a clock step backwards
                                                                       // counts as 0
  };
  for (const Row& row : rows) {
    CAPTURE(row.seconds);
    DaemonStatus s;
    s.RecordDuration(row.seconds);
    for (size_t i = 0; i < s.duration_counts.size(); ++i) {
      CHECK(s.duration_counts[i] == (i == row.bucket ? 1u : 0u));
    }
    CHECK(s.duration_sum == std::max(row.seconds, 0.0));
  }
}

TEST_CASE("a duration that is not a number is not recorded") {
  DaemonStatus s;
  s.RecordDuration(std::nan(""));
  s.RecordDuration(std::numeric_limits<double>::infinity());
  for (uint64_t c : s.duration_counts) CHECK(c == 0);
  CHECK(s.duration_sum == 0);
}

TEST_CASE("queue depth sums the watches' queued bundles") {
  CHECK(DaemonStatus().QueueDepth() == 0);
  CHECK(Fixture().QueueDepth() == 3);
}

TEST_CASE("status line summarises folders, queue and counts") {
  struct Row {
    DaemonStatus status;
    std::string line;
  };
  DaemonStatus one;
  one.state = "stopping";
  one.watches = {{"/d", "/s", 0, 1, {}, {}}};
  one.models["/s/m"].last_result = "retrying";
  one.models["/s/m"].failures = 1;
  const Row rows[] = {
      {DaemonStatus(),
       "watching 0 folders; queue 0, publishing 0; 0 published, 0 failed, 0 unchanged"},
      {Fixture(), "watching 2 folders; queue 3, publishing 1; 3 published, 3 failed, 2 unchanged"},
      {one,
       "stopping; watching 1 folder; queue 0, publishing 1; 0 published, 1 failed, 0 unchanged, "
       "1 retrying"},
  };
  for (const Row& row : rows) CHECK(StatusLine(row.status) == row.line);
}

TEST_CASE("weightdrop status renders header, watches and models as tables") {
  test::TempDir dir;
  DaemonStatus s = Fixture();
  s.pid = getpid();  // a live process: no "not running" note
  test::WriteFile(dir / "status.json", StatusToJson(s));
  const Result<std::string> text = RenderStatusFile(dir / "status.json");
  REQUIRE(text.ok());
  const std::string pid = std::to_string(s.pid);
  const std::string expected =
      "weightdrop running, pid " + pid +
      ", started 2026-11-28T18:00:00Z, config /etc/weightdrop/config.yaml\n"
      "totals: 3 published, 3 failed, 2 unchanged, 1.0 MiB published\n"
      "\n"
      "DROP         SERVE       QUEUED  IN FLIGHT  IGNORED\n"
      "/srv/drop/a  /srv/serve       2          1        2\n"
      "/srv/drop/b  /srv/serve       1          0        0\n"
      "ignored in /srv/drop/a (not bundles): notes.txt UP.NPZ\n"
      "cannot claim in /srv/drop/b: locked: rename: Permission denied\n"
      "\n"
      "PUBLISHING           AS MODEL                DONE  ELAPSED\n"
      "/srv/drop/a/big.npz  big       1.0 MiB of 4.0 MiB     2.5s\n"
      "\n"
      "MODEL              VERSION  LAST RESULT  LAST SUCCESS          PUBLISHES  FAILURES  "
      "LAST ERROR\n"
      "/srv/serve/mnist         3  published    2026-11-28T18:10:00Z          3         1  -\n"
      "/srv/serve/resnet        -  failed       -                             0         2  "
      "resnet.npz: member 'fc/w.npy': truncated\n";
  CHECK(*text == expected);
}

TEST_CASE("weightdrop status says when the daemon that wrote the file is gone") {
  test::TempDir dir;
  DaemonStatus s;
  s.pid = 0x7ffffff0;  // above any pid_max
  test::WriteFile(dir / "status.json", StatusToJson(s));
  const Result<std::string> text = RenderStatusFile(dir / "status.json");
  REQUIRE(text.ok());
  CHECK(text->find("(no process 2147483632 is running") != std::string::npos);
  CHECK(text->find("no watches\n") != std::string::npos);
  CHECK(text->find("no models yet\n") != std::string::npos);
}

TEST_CASE("weightdrop status says when a daemon stopped cleanly, not that it is gone") {
  test::TempDir dir;
  DaemonStatus s;
  s.pid = 0x7ffffff0;  // gone, as after any stop
  s.started_unix = kStarted;
  s.state = "stopped";
  s.stopped_unix = kStarted + 3600;
  const Result<DaemonStatus> back = StatusFromJson(StatusToJson(s), "status.json");
  REQUIRE(back.ok());
  CHECK(back->stopped_unix == s.stopped_unix);
  CHECK(StatusToJson(s).find("\"stopped\": \"2026-11-28T19:00:00Z\"") != std::string::npos);
  test::WriteFile(dir / "status.json", StatusToJson(s));
  Result<std::string> text = RenderStatusFile(dir / "status.json");
  REQUIRE(text.ok());
  CHECK(Lines(*text)[0] ==
        "weightdrop stopped at 2026-11-28T19:00:00Z (pid 2147483632), started "
        "2026-11-28T18:00:00Z, config -");
  CHECK(text->find("no process") == std::string::npos);
  // A status file from before stop times were recorded.
  s.stopped_unix = 0;
  test::WriteFile(dir / "status.json", StatusToJson(s));
  text = RenderStatusFile(dir / "status.json");
  REQUIRE(text.ok());
  CHECK(Lines(*text)[0].rfind("weightdrop stopped (pid 2147483632), started ", 0) == 0);
}

TEST_CASE("weightdrop status shortens long errors in the middle, on code point boundaries") {
  test::TempDir dir;
  DaemonStatus s;
  s.pid = getpid();
  std::string error = "/d/big.npz:\n  member 'x':\t";
  for (int i = 0; i < 100; ++i) error += "\xc3\xa9";  // é
  error += " END\n";
  s.models["/s/m"].last_error = error;
  test::WriteFile(dir / "status.json", StatusToJson(s));
  const Result<std::string> text = RenderStatusFile(dir / "status.json");
  REQUIRE(text.ok());
  const std::string row = Lines(*text).back();
  const std::string shown = row.substr(row.find("/d/big"));
  // One line, blanks collapsed; a third of the room for the start.
  std::string head = "/d/big.npz: member 'x': ";
  for (int i = 0; i < 8; ++i) head += "\xc3\xa9";  // 24 + 8 = 32 code points
  CHECK(shown.rfind(head + "...", 0) == 0);
  CHECK(shown.substr(shown.size() - 4) == " END");
  size_t code_points = 0;
  for (char c : shown) code_points += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  CHECK(code_points == 100);
  // No é was cut in half: every lead byte 0xC3 is followed by 0xA9.
  for (size_t i = 0; i < shown.size(); ++i) {
    if (shown[i] == '\xc3') CHECK(shown[i + 1] == '\xa9');
    if (shown[i] == '\xa9') CHECK(shown[i - 1] == '\xc3');
  }
}

TEST_CASE("weightdrop status reports missing and malformed files by path and field") {
  test::TempDir dir;
  const std::string path = dir / "status.json";
  struct Row {
    const char* contents;  // nullptr: no file
    ErrorKind kind;
    std::string message;  // after "<path>: "
  };
  const Row rows[] = {
      {nullptr, ErrorKind::kEnvironment,
       "no such file (is the daemon running with this state_dir?)"},
      {"{\"pid\": 1,", ErrorKind::kBundle, "not valid JSON: "},
      {"", ErrorKind::kBundle, "not valid JSON: "},
      {"[1, 2]", ErrorKind::kBundle, "expected a JSON object at the top level, got array"},
      {R"({"pid": "one"})", ErrorKind::kBundle, "field pid: expected an integer, got string"},
      {R"({"started": "yesterday"})", ErrorKind::kBundle,
       "field started: 'yesterday' is not an RFC 3339 UTC time like 2026-11-28T18:00:00Z"},
      {R"({"models": {"s/m": {"last_success": "2026-00-28T18:00:00Z"}}})", ErrorKind::kBundle,
       R"(field models["s/m"].last_success: '2026-00-28T18:00:00Z' is not an RFC 3339)"},
      {R"({"started": "2026-11-28T18:00:00+01:00"})", ErrorKind::kBundle,
       "field started: '2026-11-28T18:00:00+01:00' is not an RFC 3339 UTC time"},
      {R"({"watches": {}})", ErrorKind::kBundle, "field watches: expected an array, got object"},
      {R"({"watches": [{"queued": -1}]})", ErrorKind::kBundle,
       "field watches[0].queued: expected an unsigned integer, got number"},
      {R"({"models": {"s/m": {"publishes": "many"}}})", ErrorKind::kBundle,
       R"(field models["s/m"].publishes: expected an unsigned integer, got string)"},
      {R"({"models": {"s/m": {"current_version": 9999999999}}})", ErrorKind::kBundle,
       R"(field models["s/m"].current_version: expected an integer, got number)"},
      {R"({"models": {"s/m": 3}})", ErrorKind::kBundle,
       R"(field models["s/m"]: expected an object, got number)"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.message);
    if (row.contents != nullptr) test::WriteFile(path, row.contents);
    const Result<std::string> text = RenderStatusFile(path);
    REQUIRE(!text.ok());
    CHECK(text.status().kind() == row.kind);
    CHECK(text.status().message().rfind(path + ": " + row.message, 0) == 0);
  }
}

TEST_CASE("weightdrop status refuses a file far larger than any status") {
  test::TempDir dir;
  test::WriteFile(dir / "status.json", std::string((16u << 20) + 1, ' '));
  const Result<std::string> text = RenderStatusFile(dir / "status.json");
  REQUIRE(!text.ok());
  CHECK(text.status().kind() == ErrorKind::kBundle);
  CHECK(text.status().message() ==
        dir / "status.json: larger than 16 MiB; not a weightdrop status file");
}

TEST_CASE("missing fields keep their defaults") {
  const Result<DaemonStatus> s = StatusFromJson(R"({"pid": 9, "models": {"s/m": {}}})", "x");
  REQUIRE(s.ok());
  CHECK(s->pid == 9);
  CHECK(s->state == "running");
  CHECK(s->started_unix == 0);
  CHECK(s->watches.empty());
  REQUIRE(s->models.count("s/m") == 1);
  CHECK(!s->models.at("s/m").last_success_unix.has_value());
}

}  // namespace
}  // namespace wd
