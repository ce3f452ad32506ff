// SetupLogging: what actually reaches stderr (captured through a file) in
// text, journal and JSON form, level filtering, and bad levels.
#include "daemon/logging.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace wd {
namespace {

// Points fd 2 at a scratch file and restores stderr and the default logger
// on destruction.
class StderrCapture {
 public:
  StderrCapture() : saved_logger_(spdlog::default_logger()), path_(dir_ / "stderr.txt") {
    std::fflush(stderr);
    saved_fd_ = dup(STDERR_FILENO);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
    close(fd);
  }
  ~StderrCapture() {
    std::fflush(stderr);
    dup2(saved_fd_, STDERR_FILENO);
    close(saved_fd_);
    spdlog::set_default_logger(saved_logger_);
  }
  std::vector<std::string> Lines() {
    spdlog::default_logger()->flush();
    std::fflush(stderr);
    std::istringstream in(test::ReadFile(path_));
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
  }

 private:
  std::shared_ptr<spdlog::logger> saved_logger_;
  test::TempDir dir_;
  std::string path_;
  int saved_fd_ = -1;
};

using test::ScopedEnv;

void LogOneOfEach() {
  spdlog::trace("m-trace");
  spdlog::debug("m-debug");
  spdlog::info("m-info");
  spdlog::warn("m-warn");
  spdlog::error("m-error");
  spdlog::critical("m-critical");
}

TEST_CASE("under the journal every line starts with its syslog priority and has no time") {
  ScopedEnv journal("JOURNAL_STREAM", "8:123456");
  StderrCapture capture;
  REQUIRE(SetupLogging("trace", LogFormat::kText).ok());
  LogOneOfEach();
  const std::vector<std::string> want = {"<7>m-trace", "<7>m-debug", "<6>m-info",
                                         "<4>m-warn",  "<3>m-error", "<2>m-critical"};
  CHECK(capture.Lines() == want);
}

TEST_CASE("on a plain stderr text lines carry a timestamp and the level") {
  ScopedEnv journal("JOURNAL_STREAM", nullptr);
  StderrCapture capture;
  REQUIRE(SetupLogging("info", LogFormat::kText).ok());
  spdlog::info("watching /srv/drop");
  spdlog::warn("hook publish m exited with status 3");
  const auto lines = capture.Lines();
  REQUIRE(lines.size() == 2);
  const std::regex info(R"(\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] \[info\] watching /srv/drop)");
  const std::regex warn(R"(\[[-0-9 :.]+\] \[warning\] hook publish m exited with status 3)");
  CHECK(std::regex_match(lines[0], info));
  CHECK(std::regex_match(lines[1], warn));
}

TEST_CASE("control characters in a text line are escaped: a name cannot forge a line") {
  for (const char* journal : {"8:123456", static_cast<const char*>(nullptr)}) {
    ScopedEnv env("JOURNAL_STREAM", journal);
    StderrCapture capture;
    REQUIRE(SetupLogging("info", LogFormat::kText).ok());
    spdlog::warn("drop/a\n<3>forged\tb\x7f.npz: bad");
    const auto lines = capture.Lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("drop/a\\x0a<3>forged\\x09b\\x7f.npz: bad") != std::string::npos);
  }
}

TEST_CASE("the level filters what is written") {
  ScopedEnv journal("JOURNAL_STREAM", "8:1");
  struct Row {
    const char* level;
    std::vector<std::string> lines;
  };
  const Row rows[] = {
      {"trace",
       {"<7>m-trace", "<7>m-debug", "<6>m-info", "<4>m-warn", "<3>m-error", "<2>m-critical"}},
      {"debug", {"<7>m-debug", "<6>m-info", "<4>m-warn", "<3>m-error", "<2>m-critical"}},
      {"info", {"<6>m-info", "<4>m-warn", "<3>m-error", "<2>m-critical"}},
      {"warn", {"<4>m-warn", "<3>m-error", "<2>m-critical"}},
      {"error", {"<3>m-error", "<2>m-critical"}},
  };
  for (const auto& row : rows) {
    CAPTURE(row.level);
    StderrCapture capture;
    REQUIRE(SetupLogging(row.level, LogFormat::kText).ok());
    LogOneOfEach();
    CHECK(capture.Lines() == row.lines);
  }
}

TEST_CASE("JSON lines parse and carry ts, level and the escaped msg") {
  ScopedEnv journal("JOURNAL_STREAM", nullptr);
  StderrCapture capture;
  REQUIRE(SetupLogging("debug", LogFormat::kJson).ok());
  const std::string tricky = "quote \" backslash \\ newline \n tab \t ctrl \x01 utf8 \xc3\xa9";
  const auto before = std::chrono::system_clock::now();
  spdlog::info("{}", tricky);
  spdlog::debug("dbg");
  spdlog::trace("not written");
  spdlog::warn("w");
  spdlog::error("bad utf8 \xff\xfe end");
  const auto lines = capture.Lines();
  REQUIRE(lines.size() == 4);

  struct Row {
    const char* level;
    std::string msg;
  };
  const Row want[] = {{"info", tricky},
                      {"debug", "dbg"},
                      {"warn", "w"},
                      {"error", "bad utf8 \xef\xbf\xbd\xef\xbf\xbd end"}};
  const std::regex ts_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  for (size_t i = 0; i < lines.size(); ++i) {
    CAPTURE(lines[i]);
    const auto j = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    REQUIRE(j.is_object());
    CHECK(j.size() == 3);
    CHECK(j.value("level", "") == want[i].level);
    CHECK(j.value("msg", "") == want[i].msg);
    const std::string ts = j.value("ts", "");
    REQUIRE(std::regex_match(ts, ts_re));
    // The timestamp is UTC and current: parse it back and compare.
    std::tm tm{};
    REQUIRE(strptime(ts.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr);
    const auto logged = std::chrono::system_clock::from_time_t(timegm(&tm));
    CHECK(logged >= std::chrono::floor<std::chrono::seconds>(before));
    CHECK(logged <= std::chrono::system_clock::now());
  }
}

TEST_CASE("JSON lines under the journal keep the priority prefix") {
  ScopedEnv journal("JOURNAL_STREAM", "8:99");
  StderrCapture capture;
  REQUIRE(SetupLogging("info", LogFormat::kJson).ok());
  spdlog::warn("disk nearly full");
  const auto lines = capture.Lines();
  REQUIRE(lines.size() == 1);
  REQUIRE(lines[0].rfind("<4>{", 0) == 0);
  const auto j = nlohmann::json::parse(lines[0].substr(3), nullptr, false);
  CHECK(j.value("msg", "") == "disk nearly full");
  CHECK(j.value("level", "") == "warn");
}

TEST_CASE("calling SetupLogging again switches format and level in place") {
  ScopedEnv journal("JOURNAL_STREAM", "8:99");
  StderrCapture capture;
  REQUIRE(SetupLogging("info", LogFormat::kText).ok());
  spdlog::info("one");
  spdlog::debug("hidden");
  REQUIRE(SetupLogging("debug", LogFormat::kJson).ok());
  spdlog::debug("two");
  const auto lines = capture.Lines();
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "<6>one");
  REQUIRE(lines[1].rfind("<7>{", 0) == 0);
  CHECK(nlohmann::json::parse(lines[1].substr(3), nullptr, false).value("msg", "") == "two");
}

TEST_CASE("an unknown log level is a config error naming the level") {
  StderrCapture capture;
  for (const char* level : {"verbose", "", "INFO", "warning", "critical", "off"}) {
    CAPTURE(level);
    const Status s = SetupLogging(level, LogFormat::kText);
    REQUIRE_FALSE(s.ok());
    CHECK(s.kind() == ErrorKind::kConfig);
    CHECK(s.message() == std::string("log_level: '") + level +
                             "' is not a level (expected trace, debug, info, warn or error)");
  }
}

}  // namespace
}  // namespace wd
