#include "core/pipeline_options.h"

#include <cstdio>
#include <limits>
#include <set>

#include "core/utf8.h"

namespace wd {
namespace {

constexpr QuantDtype kRealDtypes[] = {QuantDtype::kUint8, QuantDtype::kUint16,
                                      QuantDtype::kFloat16};

struct Unit {
  const char* suffix;
  uint64_t multiplier;
};
constexpr Unit kUnits[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000ULL},
    {"MB", 1000ULL * 1000},
    {"GB", 1000ULL * 1000 * 1000},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// JSON string literal for `s` (quotes, backslashes and control bytes escaped;
// other bytes copied, so UTF-8 passes through unchanged).
std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string JsonSet(const std::set<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) {
    if (out.size() > 1) out += ",";
    out += JsonString(item);
  }
  return out + "]";
}

std::string CanonicalGrouping(const Grouping& g) {
  switch (g.kind) {
    case Grouping::Kind::kSingle:
      return "{\"kind\":\"single\"}";
    case Grouping::Kind::kByPrefix:
      return "{\"kind\":\"by_prefix\",\"components\":" + std::to_string(g.prefix_components) + "}";
    case Grouping::Kind::kPatterns:
      break;
  }
  std::string rules = "[";
  for (const GroupRule& rule : g.rules) {
    if (rules.size() > 1) rules += ",";
    rules += JsonSet(std::set<std::string>(rule.match.begin(), rule.match.end()));
  }
  return "{\"kind\":\"patterns\",\"rules\":" + rules +
         "],\"unmatched\":" + (g.unmatched_error ? "\"error\"" : "\"last\"") + "}";
}

std::string CanonicalQuantize(const QuantizeMap& q) {
  std::string out = "{";
  for (QuantDtype d : kRealDtypes) {
    std::set<std::string> patterns;
    for (const auto& [dtype, list] : q.patterns) {
      if (dtype == d) patterns.insert(list.begin(), list.end());
    }
    out += JsonString(QuantDtypeName(d)) + ":" + JsonSet(patterns) + ",";
  }
  return out + "\"fallthrough\":" + JsonString(QuantDtypeName(q.fallthrough)) + "}";
}

// Weight names are UTF-8, and settings are recorded in publish.json (JSON
// text is UTF-8): a pattern with a stray byte could match names it was not
// written for and would come back altered from the record.
Status CheckPattern(const std::string& p, const std::string& where) {
  if (p.empty()) return Status::Config(where + "empty pattern");
  if (p.find('\0') != std::string::npos) {
    return Status::Config(where + "a pattern holds a NUL character");
  }
  if (!IsValidUtf8(p)) {
    std::string shown;
    for (unsigned char c : p) {
      if (c >= 0x20 && c < 0x7f) {
        shown += static_cast<char>(c);
      } else {
        static const char kHex[] = "0123456789abcdef";
        shown += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
      }
    }
    return Status::Config(where + "pattern '" + shown + "' is not valid UTF-8");
  }
  return Status::Ok();
}

}  // namespace

const char* QuantDtypeName(QuantDtype d) {
  switch (d) {
    case QuantDtype::kUint8:
      return "uint8";
    case QuantDtype::kUint16:
      return "uint16";
    case QuantDtype::kFloat16:
      return "float16";
    case QuantDtype::kNone:
      break;
  }
  return "none";
}

Result<QuantDtype> QuantDtypeFromName(const std::string& name) {
  for (QuantDtype d : kRealDtypes) {
    if (name == QuantDtypeName(d)) return d;
  }
  return Status::Config("unknown quantization dtype '" + name +
                        "' (expected uint8, uint16 or float16)");
}

Result<uint64_t> ParseByteSize(const std::string& text) {
  auto bad = [&text](const std::string& why) {
    return Status::Config("invalid size '" + text + "': " + why);
  };
  if (text.empty()) return bad("empty");
  if (text[0] == '-') return bad("must be positive");
  if (!IsDigit(text[0])) {
    return bad(
        "expected a whole number of bytes, optionally followed by B, KB, MB, GB, KiB, "
        "MiB or GiB");
  }
  uint64_t n = 0;
  size_t i = 0;
  bool overflow = false;
  for (; i < text.size() && IsDigit(text[i]); ++i) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (std::numeric_limits<uint64_t>::max() - digit) / 10) overflow = true;
    n = n * 10 + digit;
  }
  if (i < text.size() && (text[i] == '.' || text[i] == ',')) {
    return bad("fractions are not allowed; use a whole number of a smaller unit (e.g. 1536KiB)");
  }
  if (i + 1 < text.size() && text[i] == ' ') ++i;  // "4 MiB"
  const std::string suffix = text.substr(i);
  const Unit* unit = nullptr;
  for (const Unit& u : kUnits) {
    if (suffix == u.suffix) unit = &u;
  }
  if (unit == nullptr) {
    return bad("unknown unit '" + suffix + "' (expected B, KB, MB, GB, KiB, MiB or GiB)");
  }
  if (overflow || n > std::numeric_limits<uint64_t>::max() / unit->multiplier) {
    return bad("too large (does not fit in 64 bits)");
  }
  if (n == 0) return bad("must be at least 1 byte");
  return n * unit->multiplier;
}

Status ValidateQuantizeMap(const QuantizeMap& map) {
  for (const auto& [dtype, patterns] : map.patterns) {
    if (dtype == QuantDtype::kNone) {
      return Status::Config("quantize: an entry has no dtype (expected uint8, uint16 or float16)");
    }
    const std::string where = std::string("quantize: ") + QuantDtypeName(dtype) + ": ";
    if (patterns.empty()) return Status::Config(where + "empty pattern list");
    for (const std::string& p : patterns) {
      WD_RETURN_IF_ERROR(CheckPattern(p, where));
    }
  }
  return Status::Ok();
}

Status ValidatePipelineOptions(const PipelineOptions& options) {
  if (options.shard_size == 0) return Status::Config("shard_size: must be at least 1 byte");
  const Grouping& g = options.grouping;
  if (g.kind == Grouping::Kind::kByPrefix && g.prefix_components < 1) {
    return Status::Config("groups: by_prefix must be at least 1, got " +
                          std::to_string(g.prefix_components));
  }
  if (g.kind == Grouping::Kind::kPatterns) {
    if (g.rules.empty()) return Status::Config("groups: empty list of groups");
    for (size_t i = 0; i < g.rules.size(); ++i) {
      const std::string where = "groups: group " + std::to_string(i + 1) + ": ";
      if (g.rules[i].match.empty()) return Status::Config(where + "no match patterns");
      if (!IsValidUtf8(g.rules[i].name)) return Status::Config(where + "name is not valid UTF-8");
      for (const std::string& p : g.rules[i].match) {
        WD_RETURN_IF_ERROR(CheckPattern(p, where));
      }
    }
  }
  return ValidateQuantizeMap(options.quantize);
}

std::string CanonicalOptions(const PipelineOptions& options) {
  return "{\"shard_size\":" + std::to_string(options.shard_size) +
         ",\"groups\":" + CanonicalGrouping(options.grouping) +
         ",\"quantize\":" + CanonicalQuantize(options.quantize) + "}";
}

}  // namespace wd
