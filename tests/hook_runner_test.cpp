// HookRunner on a real libuv loop with real processes: output capture, exit
// codes, timeouts that kill the whole process group, spawn failures, the
// hook environment, and a loop that closes cleanly after every test.
#include "daemon/hook_runner.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace wd {
namespace {

using std::chrono::steady_clock;

struct LogLine {
  spdlog::level::level_enum level;
  std::string text;
};

class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<LogLine> lines() {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    lines_.push_back({msg.level, std::string(msg.payload.data(), msg.payload.size())});
  }
  void flush_() override {}

 private:
  std::vector<LogLine> lines_;
};

// Routes the default logger into a CaptureSink for the test's lifetime.
class LogCapture {
 public:
  LogCapture() : saved_(spdlog::default_logger()), sink_(std::make_shared<CaptureSink>()) {
    auto logger = std::make_shared<spdlog::logger>("hook-test", sink_);
    logger->set_level(spdlog::level::trace);
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(saved_); }
  std::vector<LogLine> lines() { return sink_->lines(); }
  std::vector<std::string> texts() {
    std::vector<std::string> out;
    for (const auto& l : lines()) out.push_back(l.text);
    return out;
  }
  bool Has(spdlog::level::level_enum level, const std::string& text) {
    auto all = lines();
    return std::any_of(all.begin(), all.end(),
                       [&](const LogLine& l) { return l.level == level && l.text == text; });
  }

 private:
  std::shared_ptr<spdlog::logger> saved_;
  std::shared_ptr<CaptureSink> sink_;
};

// A private loop; the destructor checks that it closes with nothing left open.
class Loop {
 public:
  Loop() { REQUIRE(uv_loop_init(&loop_) == 0); }
  ~Loop() {
    uv_run(&loop_, UV_RUN_DEFAULT);
    CHECK(uv_loop_close(&loop_) == 0);
  }
  uv_loop_t* get() { return &loop_; }
  void Run() { uv_run(&loop_, UV_RUN_DEFAULT); }

 private:
  uv_loop_t loop_;
};

struct Outcome {
  int calls = 0;
  int code = 999;
  size_t logged_before_done = 0;
};

HookEvent Event(const std::string& event = "publish") {
  return HookEvent{event,
                   {{"model", "resnet"},
                    {"version", "3"},
                    {"dir", "/srv/models/resnet/3"},
                    {"manifest", "/srv/models/resnet/weights_manifest.json"},
                    {"bundle", "/drop/.weightdrop/done/resnet.npz"},
                    {"error", ""}}};
}

std::function<void(int)> Record(Outcome* o, LogCapture* log = nullptr) {
  return [o, log](int code) {
    ++o->calls;
    o->code = code;
    if (log != nullptr) o->logged_before_done = log->lines().size();
  };
}

// True when `pid` no longer runs: gone, or a zombie nobody reaped yet (the
// container's init may not reap orphans). Polls for up to two seconds.
bool ProcessGone(pid_t pid) {
  for (int i = 0; i < 200; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const size_t paren = text.rfind(')');
    if (!stat || paren == std::string::npos || text.compare(paren, 3, ") Z") == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

using test::ScopedEnv;

TEST_CASE("a hook's stdout and stderr lines are logged before done gets 0") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({"/bin/sh", "-c", "echo line one; echo to-stderr >&2; echo; printf 'no newline'"},
             Event(), Millis(10000), Record(&o, &log));
  CHECK(runner.running() == 1);
  loop.Run();
  CHECK(o.calls == 1);
  CHECK(o.code == 0);
  CHECK(runner.running() == 0);
  CHECK(log.Has(spdlog::level::info, "hook publish resnet: line one"));
  CHECK(log.Has(spdlog::level::info, "hook publish resnet: to-stderr"));
  CHECK(log.Has(spdlog::level::info, "hook publish resnet: "));
  CHECK(log.Has(spdlog::level::info, "hook publish resnet: no newline"));
  CHECK(o.logged_before_done == log.lines().size());
}

TEST_CASE("a large output is logged line by line in order") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({"/bin/sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo \"row $i\"; i=$((i+1)); done"},
             Event(), Millis(20000), Record(&o));
  loop.Run();
  CHECK(o.code == 0);
  std::vector<std::string> rows;
  for (const auto& t : log.texts()) {
    if (t.rfind("hook publish resnet: row ", 0) == 0) rows.push_back(t);
  }
  REQUIRE(rows.size() == 2000);
  CHECK(rows.front() == "hook publish resnet: row 0");
  CHECK(rows[1234] == "hook publish resnet: row 1234");
  CHECK(rows.back() == "hook publish resnet: row 1999");
}

TEST_CASE("a non-zero exit is reported with its status and logged as a warning") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({"/bin/sh", "-c", "exit 3"}, Event("failure"), Millis(10000), Record(&o));
  loop.Run();
  CHECK(o.calls == 1);
  CHECK(o.code == 3);
  CHECK(log.Has(spdlog::level::warn, "hook failure resnet exited with status 3"));
}

TEST_CASE("a hook killed by a signal reports 128+signal and logs the signal") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({"/bin/sh", "-c", "kill -TERM $$"}, Event(), Millis(10000), Record(&o));
  loop.Run();
  CHECK(o.code == 128 + SIGTERM);
  CHECK(log.Has(spdlog::level::warn, "hook publish resnet killed by signal 15"));
}

// Runs `/bin/sh -c "sleep 30 & <record its pid>; <rest>"` with a 300 ms
// timeout: a hook that leaves a background child behind.
struct BackgroundChildRun {
  Outcome outcome;
  pid_t child = 0;
  steady_clock::duration took{};
};

BackgroundChildRun RunLeavingChild(const std::string& rest) {
  test::TempDir dir;
  const std::string pid_file = dir / "child.pid";
  Loop loop;
  HookRunner runner(loop.get());
  BackgroundChildRun r;
  const auto start = steady_clock::now();
  runner.Run({"/bin/sh", "-c", "sleep 30 & echo $! > " + pid_file + "; " + rest}, Event(),
             Millis(300), Record(&r.outcome));
  loop.Run();
  r.took = steady_clock::now() - start;
  r.child = std::stoi(test::ReadFile(pid_file));
  return r;
}

TEST_CASE("a timeout SIGKILLs the hook's whole process group") {
  LogCapture log;
  const BackgroundChildRun r = RunLeavingChild("sleep 30");
  CHECK(r.took < std::chrono::seconds(10));
  CHECK(r.outcome.calls == 1);
  CHECK(r.outcome.code == -1);
  CHECK(log.Has(spdlog::level::warn, "hook publish resnet timed out after 0.3s: killed"));
  REQUIRE(r.child > 0);
  CHECK(ProcessGone(r.child));
}

TEST_CASE("a background child holding the output open is killed at the timeout") {
  LogCapture log;
  // The hook itself exits at once; its child keeps stdout open.
  const BackgroundChildRun r = RunLeavingChild("echo started");
  CHECK(r.took < std::chrono::seconds(10));
  CHECK(r.outcome.code == -1);
  CHECK(log.Has(spdlog::level::info, "hook publish resnet: started"));
  CHECK(log.Has(spdlog::level::warn, "hook publish resnet timed out after 0.3s: killed"));
  CHECK(ProcessGone(r.child));
}

TEST_CASE("a missing executable is logged as an error and reported as -1, never from Run") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({"/nonexistent/notify-hook", "{model}"}, Event(), Millis(10000), Record(&o));
  CHECK(o.calls == 0);
  loop.Run();
  CHECK(o.calls == 1);
  CHECK(o.code == -1);
  CHECK(runner.running() == 0);
  CHECK(log.Has(spdlog::level::err,
                "hook publish resnet: cannot start '/nonexistent/notify-hook': "
                "no such file or directory"));
}

TEST_CASE("an empty command is a start failure, not a crash") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  runner.Run({}, Event(), Millis(10000), Record(&o));
  loop.Run();
  CHECK(o.calls == 1);
  CHECK(o.code == -1);
}

TEST_CASE("argv placeholders are substituted and WEIGHTDROP_* replaces inherited values") {
  ScopedEnv inherited("WD_HOOK_TEST_INHERITED", "kept");
  ScopedEnv stale("WEIGHTDROP_MODEL", "stale-from-parent");
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  HookEvent e = Event("failure");
  e.vars["error"] = "model.npz: member 'a.npy': truncated";
  runner.Run({"/bin/sh", "-c", "echo \"args=$0|$1|$2\"; /usr/bin/env", "{model}-v{version}",
              "{dir}:{unknown}", "{error}"},
             e, Millis(10000), Record(&o));
  loop.Run();
  REQUIRE(o.code == 0);
  const std::string p = "hook failure resnet: ";
  CHECK(log.Has(spdlog::level::info, p + "args=resnet-v3|/srv/models/resnet/3:{unknown}|"
                                         "model.npz: member 'a.npy': truncated"));
  const std::vector<std::string> want = {
      "WEIGHTDROP_MODEL=resnet",
      "WEIGHTDROP_VERSION=3",
      "WEIGHTDROP_DIR=/srv/models/resnet/3",
      "WEIGHTDROP_MANIFEST=/srv/models/resnet/weights_manifest.json",
      "WEIGHTDROP_BUNDLE=/drop/.weightdrop/done/resnet.npz",
      "WEIGHTDROP_ERROR=model.npz: member 'a.npy': truncated",
      "WEIGHTDROP_EVENT=failure",
      "WD_HOOK_TEST_INHERITED=kept",
  };
  const auto texts = log.texts();
  for (const auto& w : want) {
    CAPTURE(w);
    CHECK(std::count(texts.begin(), texts.end(), p + w) == 1);
  }
  CHECK(std::count_if(texts.begin(), texts.end(), [&](const std::string& t) {
          return t.rfind(p + "WEIGHTDROP_MODEL=", 0) == 0;
        }) == 1);
}

TEST_CASE("a bundle that got no model name is named in the hook's log lines by its file") {
  // "my model.npz" under the template {stem} gives no valid model name: the
  // bundle fails with {model} empty, and the log must still say whose hook.
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome o;
  HookEvent e = Event("failure");
  e.vars["model"] = "";
  e.vars["version"] = "";
  e.vars["bundle"] = "/drop/.weightdrop/failed/my model.npz";
  runner.Run({"/bin/sh", "-c", "echo \"model=[$0]\"; exit 3", "{model}"}, e, Millis(10000),
             Record(&o));
  loop.Run();
  CHECK(o.code == 3);
  CHECK(log.Has(spdlog::level::info, "hook failure 'my model.npz': model=[]"));
  CHECK(log.Has(spdlog::level::warn, "hook failure 'my model.npz' exited with status 3"));
}

TEST_CASE("KillAll reports running hooks as -1 at once and the loop still closes") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome slow;
  Outcome quick;
  runner.Run({"/bin/sh", "-c", "sleep 30"}, Event(), Millis(60000), Record(&slow));
  runner.Run({"/bin/sh", "-c", "sleep 30 & sleep 30"}, Event(), Millis(60000), Record(&quick));
  struct Ctx {
    HookRunner* runner;
    Outcome* slow;
    Outcome* quick;
    bool reported_inside = false;
    size_t running_after = 99;
  } ctx{&runner, &slow, &quick};
  uv_timer_t timer;
  uv_timer_init(loop.get(), &timer);
  timer.data = &ctx;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        auto* c = static_cast<Ctx*>(t->data);
        c->runner->KillAll();
        c->reported_inside = c->slow->calls == 1 && c->quick->calls == 1;
        c->running_after = c->runner->running();
        uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
      },
      200, 0);
  const auto start = steady_clock::now();
  loop.Run();
  CHECK(steady_clock::now() - start < std::chrono::seconds(10));
  CHECK(ctx.reported_inside);
  CHECK(ctx.running_after == 0);
  CHECK(slow.calls == 1);
  CHECK(slow.code == -1);
  CHECK(quick.calls == 1);
  CHECK(quick.code == -1);
  CHECK(log.Has(spdlog::level::warn, "hook publish resnet killed at shutdown"));
}

TEST_CASE("destroying the runner with a hook running kills it and the loop closes") {
  LogCapture log;
  Loop loop;
  Outcome o;
  {
    HookRunner runner(loop.get());
    runner.Run({"/bin/sh", "-c", "sleep 30"}, Event(), Millis(60000), Record(&o));
    uv_run(loop.get(), UV_RUN_NOWAIT);
  }
  CHECK(o.calls == 1);
  CHECK(o.code == -1);
  const auto start = steady_clock::now();
  loop.Run();
  CHECK(steady_clock::now() - start < std::chrono::seconds(10));
  CHECK(o.calls == 1);
}

TEST_CASE("a done callback may start the next hook") {
  LogCapture log;
  Loop loop;
  HookRunner runner(loop.get());
  Outcome second;
  runner.Run({"/bin/sh", "-c", "echo first"}, Event(), Millis(10000), [&](int code) {
    CHECK(code == 0);
    runner.Run({"/bin/sh", "-c", "echo second"}, Event(), Millis(10000), Record(&second));
  });
  loop.Run();
  CHECK(second.code == 0);
  const auto texts = log.texts();
  const auto first_at = std::find(texts.begin(), texts.end(), "hook publish resnet: first");
  const auto second_at = std::find(texts.begin(), texts.end(), "hook publish resnet: second");
  CHECK(first_at < second_at);
  CHECK(second_at != texts.end());
}

TEST_CASE("SubstitutePlaceholders replaces known names and leaves the rest") {
  const std::map<std::string, std::string> vars = {
      {"model", "m"}, {"version", "12"}, {"error", ""}, {"dir", "{version}"}};
  struct Row {
    std::string in;
    std::string out;
  };
  const Row rows[] = {
      {"{model}", "m"},
      {"a{model}b{version}c", "amb12c"},
      {"{model}{model}", "mm"},
      {"plain", "plain"},
      {"", ""},
      {"{unknown}", "{unknown}"},
      {"{", "{"},
      {"}", "}"},
      {"{model", "{model"},
      {"{{model}}", "{m}"},
      {"{x{model}", "{xm"},
      {"[{error}]", "[]"},
      {"{dir}", "{version}"},  // values are not expanded again
      {"{MODEL}", "{MODEL}"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.in);
    CHECK(SubstitutePlaceholders(row.in, vars) == row.out);
  }
}

}  // namespace
}  // namespace wd
