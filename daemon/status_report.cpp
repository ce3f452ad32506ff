#include "daemon/status_report.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>
#include <type_traits>

#include "daemon/human_text.h"

namespace wd {
namespace {

using Json = nlohmann::ordered_json;

// status.json is a few KiB per model; anything near this is not ours.
constexpr uint64_t kMaxStatusFileBytes = 16u << 20;
// Longest last_error shown in the `weightdrop status` table (code points).
constexpr size_t kMaxErrorWidth = 100;

// ---- Time ----------------------------------------------------------------

std::string FormatRfc3339(int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  char buf[64] = "invalid-time";
  if (gmtime_r(&t, &tm) != nullptr) std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Accepts "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (fraction dropped).
std::optional<int64_t> ParseRfc3339(const std::string& text) {
  static const std::regex kForm(
      R"(^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?[Zz]$)");
  std::smatch m;
  if (!std::regex_match(text, m, kForm)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(m[1]) - 1900;
  tm.tm_mon = std::stoi(m[2]) - 1;
  tm.tm_mday = std::stoi(m[3]);
  tm.tm_hour = std::stoi(m[4]);
  tm.tm_min = std::stoi(m[5]);
  tm.tm_sec = std::stoi(m[6]);
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm));
}

// ---- status.json ---------------------------------------------------------

Json WatchToJson(const WatchStatus& w) {
  return Json{{"drop", w.drop},           {"serve", w.serve},     {"queued", w.queued},
              {"in_flight", w.in_flight}, {"ignored", w.ignored}, {"unclaimable", w.unclaimable}};
}

Json ModelToJson(const ModelStatus& m) {
  Json j;
  j["model"] = m.model;
  j["serve"] = m.serve;
  j["current_version"] = m.current_version;
  j["last_result"] = m.last_result;
  j["last_error"] = m.last_error;
  j["last_bundle"] = m.last_bundle;
  j["last_success"] = m.last_success_unix ? Json(FormatRfc3339(*m.last_success_unix)) : Json();
  j["publishes"] = m.publishes;
  j["failures"] = m.failures;
  j["unchanged"] = m.unchanged;
  j["bytes"] = m.bytes;
  return j;
}

struct Totals {
  uint64_t publishes = 0, failures = 0, unchanged = 0, bytes = 0, retrying = 0;
};

Totals SumModels(const DaemonStatus& s) {
  Totals t;
  for (const auto& [key, m] : s.models) {
    t.publishes += m.publishes;
    t.failures += m.failures;
    t.unchanged += m.unchanged;
    t.bytes += m.bytes;
    if (m.last_result == "retrying") ++t.retrying;
  }
  return t;
}

// "models[\"s/m\"]" + "publishes" -> "models[\"s/m\"].publishes".
std::string FieldPath(const std::string& where, const char* key) {
  if (where.empty()) return key;
  if (*key == '\0') return where;
  return where + "." + key;
}

Status FieldError(const std::string& origin, const std::string& where, const char* key,
                  const char* expected, const Json& got) {
  return Status::Bundle(origin + ": field " + FieldPath(where, key) + ": expected " + expected +
                        ", got " + std::string(got.type_name()));
}

// Reads obj[key] into *out. Missing or null keeps *out; a wrong type or an
// out-of-range number is an error.
template <typename T>
Status GetField(const Json& obj, const std::string& origin, const std::string& where,
                const char* key, T* out) {
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return Status::Ok();
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return FieldError(origin, where, key, "a string", *it);
    *out = it->template get<std::string>();
  } else if constexpr (std::is_unsigned_v<T>) {
    if (!it->is_number_unsigned() || it->template get<uint64_t>() > std::numeric_limits<T>::max()) {
      return FieldError(origin, where, key, "an unsigned integer", *it);
    }
    *out = static_cast<T>(it->template get<uint64_t>());
  } else {
    const bool in_range =
        it->is_number_integer() &&
        (it->is_number_unsigned()
             ? it->template get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
             : it->template get<int64_t>() >= std::numeric_limits<T>::min() &&
                   it->template get<int64_t>() <= std::numeric_limits<T>::max());
    if (!in_range) return FieldError(origin, where, key, "an integer", *it);
    *out = static_cast<T>(it->template get<int64_t>());
  }
  return Status::Ok();
}

Status GetTime(const Json& obj, const std::string& origin, const std::string& where,
               const char* key, std::optional<int64_t>* out) {
  std::string text;
  WD_RETURN_IF_ERROR(GetField(obj, origin, where, key, &text));
  if (text.empty()) return Status::Ok();
  *out = ParseRfc3339(text);
  if (!*out) {
    return Status::Bundle(origin + ": field " + FieldPath(where, key) + ": '" + text +
                          "' is not an RFC 3339 UTC time like 2026-11-28T18:00:00Z");
  }
  return Status::Ok();
}

Status WatchFromJson(const Json& j, const std::string& origin, const std::string& where,
                     WatchStatus* w) {
  if (!j.is_object()) return FieldError(origin, where, "", "an object", j);
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "drop", &w->drop));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "serve", &w->serve));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "queued", &w->queued));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "in_flight", &w->in_flight));
  for (auto [key, list] :
       {std::pair{"ignored", &w->ignored}, std::pair{"unclaimable", &w->unclaimable}}) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;  // written before the field existed
    if (!it->is_array()) return FieldError(origin, where, key, "an array", *it);
    for (const Json& n : *it) {
      if (!n.is_string()) return FieldError(origin, where, key, "an array of strings", n);
      list->push_back(n.get<std::string>());
    }
  }
  return Status::Ok();
}

Status ModelFromJson(const Json& j, const std::string& origin, const std::string& where,
                     ModelStatus* m) {
  if (!j.is_object()) return FieldError(origin, where, "", "an object", j);
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "model", &m->model));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "serve", &m->serve));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "current_version", &m->current_version));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "last_result", &m->last_result));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "last_error", &m->last_error));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "last_bundle", &m->last_bundle));
  WD_RETURN_IF_ERROR(GetTime(j, origin, where, "last_success", &m->last_success_unix));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "publishes", &m->publishes));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "failures", &m->failures));
  WD_RETURN_IF_ERROR(GetField(j, origin, where, "unchanged", &m->unchanged));
  return GetField(j, origin, where, "bytes", &m->bytes);
}

Status ListsFromJson(const Json& j, const std::string& origin, DaemonStatus* s) {
  if (const auto it = j.find("watches"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return FieldError(origin, "", "watches", "an array", *it);
    for (size_t i = 0; i < it->size(); ++i) {
      WatchStatus w;
      WD_RETURN_IF_ERROR(WatchFromJson((*it)[i], origin, "watches[" + std::to_string(i) + "]", &w));
      s->watches.push_back(std::move(w));
    }
  }
  if (const auto it = j.find("shared_models"); it != j.end() && it->is_object()) {
    for (const auto& [key, drops] : it->items()) {
      if (!drops.is_array())
        return FieldError(origin, "shared_models", key.c_str(), "an array", drops);
      for (const Json& d : drops) {
        if (d.is_string()) s->shared_models[key].push_back(d.get<std::string>());
      }
    }
  }
  if (const auto it = j.find("publishing"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return FieldError(origin, "", "publishing", "an array", *it);
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& p = (*it)[i];
      const std::string where = "publishing[" + std::to_string(i) + "]";
      if (!p.is_object()) return FieldError(origin, where, "", "an object", p);
      PublishInFlight f;
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "bundle", &f.bundle));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "model", &f.model));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "bytes_done", &f.bytes_done));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "bytes_total", &f.bytes_total));
      if (const auto e = p.find("elapsed_seconds"); e != p.end() && e->is_number()) {
        f.elapsed_seconds = e->get<double>();
      }
      s->publishing.push_back(std::move(f));
    }
  }
  if (const auto it = j.find("stores"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return FieldError(origin, "", "stores", "an array", *it);
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& p = (*it)[i];
      const std::string where = "stores[" + std::to_string(i) + "]";
      if (!p.is_object()) return FieldError(origin, where, "", "an object", p);
      StoreStatus st;
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "target", &st.target));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "bytes_uploaded", &st.bytes_uploaded));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "requests", &st.requests));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "retries", &st.retries));
      WD_RETURN_IF_ERROR(GetField(p, origin, where, "last_error", &st.last_error));
      s->stores.push_back(std::move(st));
    }
  }
  if (const auto it = j.find("models"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) return FieldError(origin, "", "models", "an object", *it);
    for (const auto& [key, value] : it->items()) {
      WD_RETURN_IF_ERROR(ModelFromJson(value, origin, "models[\"" + key + "\"]", &s->models[key]));
    }
  }
  return Status::Ok();
}

// ---- Prometheus text format 0.0.4 ----------------------------------------

std::string PromFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

std::string PromLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string ModelLabels(const ModelStatus& m) {
  return "{model=\"" + PromLabelValue(m.model) + "\",serve=\"" + PromLabelValue(m.serve) + "\"}";
}

class PromWriter {
 public:
  // HELP texts are fixed literals without backslashes or newlines.
  void Family(const char* name, const char* type, const char* help) {
    out_ += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  }
  void Sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name + labels + " " + value + "\n";
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

struct ModelCounter {
  const char* name;
  const char* help;
  uint64_t ModelStatus::*field;
};

constexpr ModelCounter kModelCounters[] = {
    {"weightdrop_publishes_total", "New model versions published.", &ModelStatus::publishes},
    {"weightdrop_failures_total", "Bundles that failed to publish.", &ModelStatus::failures},
    {"weightdrop_unchanged_total", "Bundles identical to the current version (nothing published).",
     &ModelStatus::unchanged},
    {"weightdrop_published_bytes_total", "Weight shard bytes published.", &ModelStatus::bytes},
};

void WriteModelCounters(const DaemonStatus& s, PromWriter* w) {
  if (s.models.empty()) return;
  for (const ModelCounter& c : kModelCounters) {
    w->Family(c.name, "counter", c.help);
    for (const auto& [key, m] : s.models) {
      w->Sample(c.name, ModelLabels(m), std::to_string(m.*c.field));
    }
  }
}

void WriteDurationHistogram(const DaemonStatus& s, PromWriter* w) {
  static const std::string kName = "weightdrop_publish_duration_seconds";
  w->Family(kName.c_str(), "histogram", "Time from claiming a bundle to a durable publish.");
  const std::vector<double>& bounds = PublishDurationBuckets();
  auto count_at = [&](size_t i) { return i < s.duration_counts.size() ? s.duration_counts[i] : 0; };
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += count_at(i);
    w->Sample(kName + "_bucket", "{le=\"" + PromFloat(bounds[i]) + "\"}",
              std::to_string(cumulative));
  }
  for (size_t i = bounds.size(); i < s.duration_counts.size(); ++i) cumulative += count_at(i);
  w->Sample(kName + "_bucket", "{le=\"+Inf\"}", std::to_string(cumulative));
  w->Sample(kName + "_sum", "", PromFloat(s.duration_sum));
  w->Sample(kName + "_count", "", std::to_string(cumulative));
}

struct StoreCounter {
  const char* name;
  const char* help;
  uint64_t StoreStatus::*field;
};

constexpr StoreCounter kStoreCounters[] = {
    {"weightdrop_s3_uploaded_bytes_total", "Bytes uploaded to the object store (bodies).",
     &StoreStatus::bytes_uploaded},
    {"weightdrop_s3_requests_total", "Requests sent to the object store, retries included.",
     &StoreStatus::requests},
    {"weightdrop_s3_retries_total", "Object store requests repeated after a failure.",
     &StoreStatus::retries},
};

void WriteStoreCounters(const DaemonStatus& s, PromWriter* w) {
  if (s.stores.empty()) return;
  for (const StoreCounter& c : kStoreCounters) {
    w->Family(c.name, "counter", c.help);
    for (const StoreStatus& st : s.stores) {
      w->Sample(c.name, "{target=\"" + PromLabelValue(st.target) + "\"}",
                std::to_string(st.*c.field));
    }
  }
}

void WriteModelGauges(const DaemonStatus& s, PromWriter* w) {
  const bool any_success = std::any_of(s.models.begin(), s.models.end(), [](const auto& kv) {
    return kv.second.last_success_unix.has_value();
  });
  if (any_success) {
    w->Family("weightdrop_last_success_timestamp_seconds", "gauge",
              "Unix time of the model's last successful run.");
    for (const auto& [key, m] : s.models) {
      if (!m.last_success_unix) continue;
      w->Sample("weightdrop_last_success_timestamp_seconds", ModelLabels(m),
                std::to_string(*m.last_success_unix));
    }
  }
  if (s.models.empty()) return;
  w->Family("weightdrop_current_version", "gauge",
            "Version the model's current pointer names (0: none yet).");
  for (const auto& [key, m] : s.models) {
    w->Sample("weightdrop_current_version", ModelLabels(m), std::to_string(m.current_version));
  }
}

// ---- Terminal rendering --------------------------------------------------

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

size_t CodePoints(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return !IsContinuationByte(c); }));
}

// Byte offset of code point `n` (s.size() if there are fewer).
size_t OffsetOfCodePoint(const std::string& s, size_t n) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsContinuationByte(s[i]) && n-- == 0) return i;
  }
  return s.size();
}

// One line (runs of blanks and control characters become one space) of at
// most kMaxErrorWidth code points. The elision keeps a third of the room for
// the start (the file) and the rest for the end (the problem).
std::string ShortenError(const std::string& error) {
  std::string line;
  for (char c : error) {
    const bool blank = static_cast<unsigned char>(c) <= 0x20 || c == 0x7f;  // controls too
    if (!blank) {
      line += c;
    } else if (!line.empty() && line.back() != ' ') {
      line += ' ';
    }
  }
  if (!line.empty() && line.back() == ' ') line.pop_back();
  const size_t n = CodePoints(line);
  if (n <= kMaxErrorWidth) return line;
  const size_t head = (kMaxErrorWidth - 3) / 3;
  const size_t tail = kMaxErrorWidth - 3 - head;
  return line.substr(0, OffsetOfCodePoint(line, head)) + "..." +
         line.substr(OffsetOfCodePoint(line, n - tail));
}

// Columns separated by two spaces; `right[i]` right-aligns column i.
std::string Table(const std::vector<std::vector<std::string>>& rows,
                  const std::vector<bool>& right) {
  std::vector<size_t> width(right.size(), 0);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], CodePoints(row[i]));
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      const std::string pad(width[i] - CodePoints(row[i]), ' ');
      if (i > 0) line += "  ";
      line += right[i] ? pad + row[i] : row[i] + pad;
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string RenderHeader(const DaemonStatus& s) {
  const Totals t = SumModels(s);
  // A clean stop says when; any other state of a process that is gone is
  // what a crash or kill -9 left.
  const bool stopped = s.state == "stopped";
  std::string state = s.state + ", pid " + std::to_string(s.pid);
  if (stopped) {
    state = "stopped" + (s.stopped_unix != 0 ? " at " + FormatRfc3339(s.stopped_unix) : "") +
            " (pid " + std::to_string(s.pid) + ")";
  }
  std::string out = "weightdrop " + state + ", started " + FormatRfc3339(s.started_unix) +
                    ", config " + OrDash(s.config) + "\n";
  if (!stopped && s.pid > 0 && s.pid <= std::numeric_limits<pid_t>::max() &&
      kill(static_cast<pid_t>(s.pid), 0) != 0 && errno == ESRCH) {
    out += "(no process " + std::to_string(s.pid) +
           " is running: this is the status the daemon left when it stopped)\n";
  }
  out += "totals: " + std::to_string(t.publishes) + " published, " + std::to_string(t.failures) +
         " failed, " + std::to_string(t.unchanged) + " unchanged, " + HumanBytes(t.bytes) +
         " published\n";
  return out;
}

std::string RenderWatches(const DaemonStatus& s) {
  if (s.watches.empty()) return "no watches\n";
  std::vector<std::vector<std::string>> rows = {
      {"DROP", "SERVE", "QUEUED", "IN FLIGHT", "IGNORED"}};
  std::string notes;
  for (const WatchStatus& w : s.watches) {
    rows.push_back({w.drop, w.serve, std::to_string(w.queued), std::to_string(w.in_flight),
                    std::to_string(w.ignored.size())});
    for (const std::string& u : w.unclaimable) {
      notes += "cannot claim in " + w.drop + ": " + u + "\n";
    }
    if (w.ignored.empty()) continue;
    notes += "ignored in " + w.drop + " (not bundles):";
    for (size_t i = 0; i < w.ignored.size() && i < 10; ++i) notes += " " + w.ignored[i];
    if (w.ignored.size() > 10) notes += " ...";
    notes += "\n";
  }
  return Table(rows, {false, false, true, true, true}) + notes;
}

std::string RenderPublishing(const DaemonStatus& s) {
  if (s.publishing.empty()) return "";
  std::vector<std::vector<std::string>> rows = {{"PUBLISHING", "AS MODEL", "DONE", "ELAPSED"}};
  for (const PublishInFlight& p : s.publishing) {
    std::string done = HumanBytes(p.bytes_done) + " of " +
                       (p.bytes_total > 0 ? HumanBytes(p.bytes_total) : std::string("?"));
    char elapsed[32];
    std::snprintf(elapsed, sizeof elapsed, "%.1fs", p.elapsed_seconds);
    rows.push_back({p.bundle, p.model, done, elapsed});
  }
  return Table(rows, {false, false, true, true}) + "\n";
}

std::string RenderSharedModels(const DaemonStatus& s) {
  std::string out;
  for (const auto& [key, drops] : s.shared_models) {
    out += "warning: " + key + " is fed by " + std::to_string(drops.size()) + " drop folders:";
    for (const auto& d : drops) out += " " + d;
    out += "\n";
  }
  return out;
}

std::string RenderModels(const DaemonStatus& s) {
  if (s.models.empty()) return "no models yet\n";
  std::vector<std::vector<std::string>> rows = {
      {"MODEL", "VERSION", "LAST RESULT", "LAST SUCCESS", "PUBLISHES", "FAILURES", "LAST ERROR"}};
  for (const auto& [key, m] : s.models) {
    rows.push_back({key, m.current_version > 0 ? std::to_string(m.current_version) : "-",
                    OrDash(m.last_result),
                    m.last_success_unix ? FormatRfc3339(*m.last_success_unix) : "-",
                    std::to_string(m.publishes), std::to_string(m.failures),
                    OrDash(ShortenError(m.last_error))});
  }
  return Table(rows, {false, true, false, false, true, true, false});
}

std::string RenderStores(const DaemonStatus& s) {
  if (s.stores.empty()) return "";
  std::vector<std::vector<std::string>> rows = {
      {"OBJECT STORE", "UPLOADED", "REQUESTS", "RETRIES", "LAST ERROR"}};
  for (const StoreStatus& st : s.stores) {
    rows.push_back({st.target, HumanBytes(st.bytes_uploaded), std::to_string(st.requests),
                    std::to_string(st.retries), OrDash(ShortenError(st.last_error))});
  }
  return Table(rows, {false, true, true, true, false}) + "\n";
}

Result<std::string> ReadStatusFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      return Status::Environment(path +
                                 ": no such file (is the daemon running with this state_dir?)");
    }
    return ErrnoStatus(path, errno);
  }
  std::string text;
  char buf[65536];
  ssize_t n = 0;
  while (text.size() <= kMaxStatusFileBytes && (n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return ErrnoStatus(path + ": read", err);
    }
    text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (text.size() > kMaxStatusFileBytes) {
    return Status::Bundle(path + ": larger than " + std::to_string(kMaxStatusFileBytes >> 20) +
                          " MiB; not a weightdrop status file");
  }
  return text;
}

}  // namespace

void DaemonStatus::RecordDuration(double seconds) {
  if (!std::isfinite(seconds)) return;
  seconds = std::max(seconds, 0.0);
  const std::vector<double>& bounds = PublishDurationBuckets();
  duration_counts.resize(bounds.size() + 1);
  // Buckets are "less than or equal": the first bound >= seconds.
  const auto it = std::lower_bound(bounds.begin(), bounds.end(), seconds);
  ++duration_counts[static_cast<size_t>(it - bounds.begin())];
  duration_sum += seconds;
}

size_t DaemonStatus::QueueDepth() const {
  size_t depth = 0;
  for (const WatchStatus& w : watches) depth += w.queued;
  return depth;
}

std::string StatusToJson(const DaemonStatus& s) {
  const Totals t = SumModels(s);
  Json j;
  j["pid"] = s.pid;
  j["started"] = FormatRfc3339(s.started_unix);
  j["config"] = s.config;
  j["state"] = s.state;
  j["stopped"] = s.stopped_unix != 0 ? Json(FormatRfc3339(s.stopped_unix)) : Json();
  j["watches"] = Json::array();
  for (const WatchStatus& w : s.watches) j["watches"].push_back(WatchToJson(w));
  j["models"] = Json::object();
  for (const auto& [key, m] : s.models) j["models"][key] = ModelToJson(m);
  if (!s.shared_models.empty()) j["shared_models"] = s.shared_models;
  j["publishing"] = Json::array();
  for (const PublishInFlight& p : s.publishing) {
    j["publishing"].push_back(Json{{"bundle", p.bundle},
                                   {"model", p.model},
                                   {"bytes_done", p.bytes_done},
                                   {"bytes_total", p.bytes_total},
                                   {"elapsed_seconds", p.elapsed_seconds}});
  }
  if (!s.stores.empty()) {
    j["stores"] = Json::array();
    for (const StoreStatus& st : s.stores) {
      j["stores"].push_back(Json{{"target", st.target},
                                 {"bytes_uploaded", st.bytes_uploaded},
                                 {"requests", st.requests},
                                 {"retries", st.retries},
                                 {"last_error", st.last_error}});
    }
  }
  j["totals"] = Json{{"publishes", t.publishes},
                     {"failures", t.failures},
                     {"unchanged", t.unchanged},
                     {"bytes", t.bytes}};
  // File names are bytes, not always UTF-8: replace rather than throw.
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<DaemonStatus> StatusFromJson(const std::string& text, const std::string& origin) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception& e) {
    return Status::Bundle(origin + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) {
    return Status::Bundle(origin + ": expected a JSON object at the top level, got " +
                          std::string(j.type_name()));
  }
  DaemonStatus s;
  std::optional<int64_t> started, stopped;
  WD_RETURN_IF_ERROR(GetField(j, origin, "", "pid", &s.pid));
  WD_RETURN_IF_ERROR(GetTime(j, origin, "", "started", &started));
  WD_RETURN_IF_ERROR(GetField(j, origin, "", "config", &s.config));
  WD_RETURN_IF_ERROR(GetField(j, origin, "", "state", &s.state));
  WD_RETURN_IF_ERROR(GetTime(j, origin, "", "stopped", &stopped));
  WD_RETURN_IF_ERROR(ListsFromJson(j, origin, &s));
  s.started_unix = started.value_or(0);
  s.stopped_unix = stopped.value_or(0);
  return s;
}

std::string StatusToPrometheus(const DaemonStatus& s) {
  PromWriter w;
  WriteModelCounters(s, &w);
  WriteDurationHistogram(s, &w);
  w.Family("weightdrop_queue_depth", "gauge", "Ready bundles waiting for their model's turn.");
  w.Sample("weightdrop_queue_depth", "", std::to_string(s.QueueDepth()));
  WriteModelGauges(s, &w);
  WriteStoreCounters(s, &w);
  w.Family("weightdrop_start_time_seconds", "gauge", "Unix time the daemon started.");
  w.Sample("weightdrop_start_time_seconds", "", std::to_string(s.started_unix));
  return w.Take();
}

std::string StatusLine(const DaemonStatus& s) {
  const Totals t = SumModels(s);
  size_t in_flight = 0;
  for (const WatchStatus& w : s.watches) in_flight += w.in_flight;
  std::string line = s.state == "running" ? "" : s.state + "; ";
  line += "watching " + std::to_string(s.watches.size()) +
          (s.watches.size() == 1 ? " folder" : " folders") + "; queue " +
          std::to_string(s.QueueDepth()) + ", publishing " + std::to_string(in_flight) + "; " +
          std::to_string(t.publishes) + " published, " + std::to_string(t.failures) + " failed, " +
          std::to_string(t.unchanged) + " unchanged";
  if (t.retrying > 0) line += ", " + std::to_string(t.retrying) + " retrying";
  return line;
}

Result<std::string> RenderStatusFile(const std::string& status_json_path) {
  WD_ASSIGN_OR_RETURN(const std::string text, ReadStatusFile(status_json_path));
  WD_ASSIGN_OR_RETURN(const DaemonStatus s, StatusFromJson(text, status_json_path));
  return RenderHeader(s) + "\n" + RenderWatches(s) + "\n" + RenderPublishing(s) + RenderStores(s) +
         RenderModels(s) + RenderSharedModels(s);
}

}  // namespace wd
