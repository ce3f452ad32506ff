// Logging: one process-wide logger on stderr, created by the first
// SetupLogging() and reconfigured in place by later calls: spdlog's default
// logger must not be replaced while other threads log through it, but its
// level and formatter may be changed at any time (sinks lock).
// Thread-agnostic.
#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "core/utf8.h"

namespace wd {
namespace {

using spdlog::level::level_enum;

struct LevelRow {
  std::string_view name;  // as written in the config and the JSON "level"
  level_enum level;
  std::string_view syslog_prefix;  // sd-daemon(3) priority prefix
};

constexpr LevelRow kLevels[] = {
    {"trace", spdlog::level::trace, "<7>"}, {"debug", spdlog::level::debug, "<7>"},
    {"info", spdlog::level::info, "<6>"},   {"warn", spdlog::level::warn, "<4>"},
    {"error", spdlog::level::err, "<3>"},   {"critical", spdlog::level::critical, "<2>"},
};
// Levels an operator may configure ("critical" is for us only).
constexpr size_t kConfigurableLevels = 5;

const LevelRow& RowFor(level_enum level) {
  for (const auto& row : kLevels) {
    if (row.level == level) return row;
  }
  return kLevels[2];  // "off" never reaches a formatter
}

void Append(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

// %* in a pattern: the journal priority prefix of the message's level.
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    Append(dest, RowFor(msg.level).syslog_prefix);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

// %& in a pattern: the message with control characters (U+0000-U+001F,
// U+007F) as \xNN, so a name holding a newline (a dropped file's, a
// hook's output) cannot split a line or forge one in the journal.
class EscapedMessageFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    Append(dest, EscapeControl(std::string_view(msg.payload.data(), msg.payload.size())));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessageFlag>();
  }
};

// "2026-11-28T18:00:00.123Z"
std::string Rfc3339Millis(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const auto secs = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
  const time_t tt = static_cast<time_t>(secs);
  std::tm utc{};
  gmtime_r(&tt, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                static_cast<int>(ms - secs * 1000));
  return buf;
}

// One JSON object per line: {"ts":..., "level":..., "msg":...}. Invalid
// UTF-8 in a message (hook output) becomes U+FFFD rather than bad JSON.
class JsonFormatter final : public spdlog::formatter {
 public:
  explicit JsonFormatter(bool journal) : journal_(journal) {}
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const LevelRow& row = RowFor(msg.level);
    if (journal_) Append(dest, row.syslog_prefix);
    const nlohmann::json msg_text = std::string(msg.payload.data(), msg.payload.size());
    Append(dest, R"({"ts":")");
    Append(dest, Rfc3339Millis(msg.time));
    Append(dest, R"(","level":")");
    Append(dest, row.name);
    Append(dest, R"(","msg":)");
    Append(dest, msg_text.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    Append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>(journal_);
  }

 private:
  bool journal_;
};

// systemd sets JOURNAL_STREAM when it connects stderr to the journal.
bool UnderJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  return stream != nullptr && *stream != '\0';
}

std::unique_ptr<spdlog::formatter> MakeFormatter(LogFormat format, bool journal) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>(journal);
  auto f = std::make_unique<spdlog::pattern_formatter>();
  if (journal) {
    // journald adds its own timestamp and shows the priority.
    f->add_flag<PriorityFlag>('*').add_flag<EscapedMessageFlag>('&').set_pattern("%*%&");
  } else {
    f->add_flag<EscapedMessageFlag>('&').set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %&");
  }
  return f;
}

std::optional<level_enum> ParseLevel(const std::string& name) {
  for (size_t i = 0; i < kConfigurableLevels; ++i) {
    if (kLevels[i].name == name) return kLevels[i].level;
  }
  return std::nullopt;
}

}  // namespace

Status SetupLogging(const std::string& level, LogFormat format) {
  const std::optional<level_enum> parsed = ParseLevel(level);
  if (!parsed) {
    return Status::Config("log_level: '" + level +
                          "' is not a level (expected trace, debug, info, warn or error)");
  }
  static std::mutex mu;
  static std::shared_ptr<spdlog::logger> logger;
  try {
    std::lock_guard<std::mutex> lock(mu);
    if (!logger) {
      spdlog::sink_ptr sink;
      if (isatty(STDERR_FILENO)) {
        sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
      } else {
        sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
      }
      logger = std::make_shared<spdlog::logger>("weightdrop", std::move(sink));
    }
    logger->set_formatter(MakeFormatter(format, UnderJournal()));
    logger->set_level(*parsed);
    if (spdlog::default_logger_raw() != logger.get()) spdlog::set_default_logger(logger);
  } catch (const std::exception& e) {
    return Status::Environment(std::string("cannot set up logging: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace wd
