#include "config/pipeline_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <optional>
#include <set>
#include <sstream>

#include "config/pattern_overlap.h"
#include "config/pipeline_yaml.h"
#include "core/utf8.h"

namespace wd {
namespace yaml {

bool IsBool(const YAML::Node& node, bool value) {
  if (!node.IsScalar()) return false;
  if (node.Tag() != "?" && node.Tag() != "tag:yaml.org,2002:bool") return false;
  const std::string& s = node.Scalar();
  return value ? (s == "true" || s == "True" || s == "TRUE")
               : (s == "false" || s == "False" || s == "FALSE");
}

namespace {

// One pattern or a non-empty list of non-empty patterns; `what` prefixes errors.
Status PatternList(const std::string& file, const YAML::Node& node, const std::string& what,
                   std::vector<std::string>* out) {
  if (node.IsScalar()) {
    if (node.Scalar().empty()) return ErrorAt(file, node, what + ": empty pattern");
    out->push_back(node.Scalar());
    return Status::Ok();
  }
  if (!node.IsSequence()) {
    return ErrorAt(file, node,
                   what + ": expected a pattern or a list of patterns, got " + Describe(node));
  }
  if (node.size() == 0) return ErrorAt(file, node, what + ": empty pattern list");
  for (const YAML::Node& item : node) {
    if (!item.IsScalar() || item.Scalar().empty()) {
      return ErrorAt(file, item, what + ": expected a non-empty pattern, got " + Describe(item));
    }
    out->push_back(item.Scalar());
  }
  return Status::Ok();
}

// --- typos -------------------------------------------------------------------

std::string Lower(std::string s) {
  for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return s;
}

// Damerau-Levenshtein distance of a and b (optimal string alignment: an edit
// is an insertion, a deletion, a substitution or swapping two neighbours),
// or anything above `limit` once it must be more.
size_t TypoDistance(const std::string& a, const std::string& b, size_t limit) {
  if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
  const size_t w = b.size() + 1;
  std::vector<size_t> d((a.size() + 1) * w);
  for (size_t i = 0; i <= a.size(); ++i) d[i * w] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      size_t best =
          std::min({d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        best = std::min(best, d[(i - 2) * w + j - 2] + 1);
      }
      d[i * w + j] = best;
    }
  }
  return d.back();
}

// --- an unquoted `*` ---------------------------------------------------------

// The byte offset of `mark` (1 line, column) in `text`, or npos.
size_t OffsetOf(const std::string& text, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0 || mark.column < 0) return std::string::npos;
  size_t at = 0;
  for (int line = 0; line < mark.line; ++line) {
    at = text.find('\n', at);
    if (at == std::string::npos) return at;
    ++at;
  }
  at += static_cast<size_t>(mark.column);
  return at < text.size() ? at : std::string::npos;
}

// `*x` as the user wrote it: up to a space or line end, without the flow
// punctuation (',' ']' '}' ':') that ends it rather than belongs to it.
std::string StarToken(const std::string& text, size_t star) {
  size_t end = text.find_first_of(" \t\r\n", star);
  std::string token = text.substr(star, end == std::string::npos ? end : end - star);
  while (token.size() > 1) {
    const char c = token.back();
    const auto opened = std::count(token.begin(), token.end(), '[');
    const auto closed = std::count(token.begin(), token.end(), ']');
    if (c != ',' && c != '}' && c != ':' && !(c == ']' && closed > opened)) break;
    token.pop_back();
  }
  return token;
}

// yaml-cpp's error for an alias naming no anchor (`uint8: */kernel`,
// `match: [*foo]`, `uint8: *`), said as what it nearly always is: a pattern
// that needed quotes. None for any other error.
std::optional<Status> UnquotedGlob(const std::string& file, const YAML::Exception& e,
                                   const std::string& text) {
  const std::string& what = e.msg;
  if (what.find("anchor") == std::string::npos && what.find("alias") == std::string::npos) {
    return std::nullopt;
  }
  YAML::Mark at = e.mark;
  size_t star = OffsetOf(text, at);
  if (star == std::string::npos || text[star] != '*') {
    // "alias not found after *" points just past the star.
    if (star == std::string::npos || star == 0 || at.column == 0 || text[star - 1] != '*') {
      return std::nullopt;
    }
    --star;
    --at.column;
    --at.pos;
  }
  const std::string token = StarToken(text, star);
  std::string quoted;
  if (token.find_first_of("\"\\") == std::string::npos) {
    quoted = "\"" + token + "\"";
  } else {  // single quotes take backslashes as written; a quote is doubled
    quoted = "'";
    for (char c : token) quoted += c == '\'' ? std::string("''") : std::string(1, c);
    quoted += "'";
  }
  return Status::Config(Where(file, at) + ": patterns that start with * must be quoted: write " +
                        quoted);
}

// --- patterns that can only conflict -------------------------------------------

// Most patterns one mapping is checked with; more are left to plan time.
constexpr size_t kMaxCheckedPatterns = 128;

// A pattern as written: its text and node, and the dtype or group it is in.
struct WrittenPattern {
  std::string text;
  YAML::Node node;
  std::string owner;  // "uint8", ...
};

// The value of `key` in mapping `map`, or a null node. (yaml-cpp's
// operator[] gives a node that throws when asked its type.)
YAML::Node ValueOf(const YAML::Node& map, const char* key) {
  if (!map.IsMap()) return YAML::Node();
  for (const auto& entry : map) {
    const YAML::Node k = entry.first;
    if (k.IsScalar() && k.Scalar() == key) return entry.second;
  }
  return YAML::Node();
}

// The pattern nodes of a value that is one pattern or a list of them.
void CollectPatterns(const YAML::Node& value, const std::string& owner,
                     std::vector<WrittenPattern>* out) {
  if (value.IsScalar()) out->push_back({value.Scalar(), value, owner});
  if (!value.IsSequence()) return;
  for (const YAML::Node& item : value) {
    if (item.IsScalar()) out->push_back({item.Scalar(), item, owner});
  }
}

// A name for messages, with control bytes and quotes shown as escapes.
std::string ShowName(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
      static const char kHex[] = "0123456789abcdef";
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// `narrow` can only conflict: `wide`, of another dtype, matches all its names.
Status CoveredPatternError(const std::string& file, const WrittenPattern& narrow,
                           const WrittenPattern& wide, bool suggest_fallthrough) {
  std::string message = "quantize: " + narrow.owner + " pattern '" + narrow.text +
                        "' can never apply: " + wide.owner + " pattern '" + wide.text +
                        "' also matches every name it matches, and a weight matched by two "
                        "dtypes is refused";
  if (suggest_fallthrough) {
    message += "; to quantize every other float weight as " + wide.owner + ", write `" +
               wide.owner + ": true` (the fallthrough; --quantize-rest " + wide.owner +
               " on the command line) instead of '" + wide.text + "'";
  }
  return ErrorAt(file, narrow.node, message);
}

Status CheckQuantizePatterns(const std::string& file, const YAML::Node& quantize,
                             PatternOracle* oracle, std::vector<std::string>* warnings) {
  std::vector<WrittenPattern> all;
  bool has_fallthrough = false;
  for (const auto& entry : quantize) {
    const YAML::Node key = entry.first;
    const YAML::Node value = entry.second;
    if (IsBool(value, true)) has_fallthrough = true;
    if (!IsBool(value, true)) CollectPatterns(value, key.Scalar(), &all);
  }
  // A pattern repeated under one dtype is said once.
  std::set<std::pair<std::string, std::string>> seen;
  std::erase_if(all, [&](const WrittenPattern& p) {
    return !seen.insert({p.owner, p.text}).second;
  });
  if (all.size() > kMaxCheckedPatterns) return Status::Ok();
  const std::string everything[] = {"*"};
  for (const WrittenPattern& p : all) {
    const PatternRelation r = oracle->Relate(p.text, {});
    if (!r.decided || r.matches_some || warnings == nullptr) continue;
    const bool wide = p.text.find('[') != std::string::npos &&
                      std::any_of(p.text.begin(), p.text.end(), [](char c) { return c & 0x80; });
    warnings->push_back(Where(file, p.node.Mark()) + ": quantize: " + p.owner + " pattern '" +
                        p.text + "' matches no weight name" +
                        (wide ? " (inside [...] each byte of a non-ASCII character is a member "
                                "of its own)"
                              : ""));
  }
  for (size_t i = 0; i < all.size(); ++i) {
    for (size_t j = i + 1; j < all.size(); ++j) {
      const WrittenPattern& a = all[i];
      const WrittenPattern& b = all[j];
      if (a.owner == b.owner) continue;
      const std::string just_b[] = {b.text};
      const std::string just_a[] = {a.text};
      const PatternRelation ab = oracle->Relate(a.text, just_b);
      if (!ab.decided) continue;
      // The fallthrough is the fix for a pattern that matches everything,
      // unless another dtype already is the fallthrough.
      if (ab.matches_some && ab.covered) {
        const bool all_names = oracle->Relate(everything[0], just_b).covered;
        return CoveredPatternError(file, a, b, all_names && !has_fallthrough);
      }
      const PatternRelation ba = oracle->Relate(b.text, just_a);
      if (ba.decided && ba.matches_some && ba.covered) {
        const bool all_names = oracle->Relate(everything[0], just_a).covered;
        return CoveredPatternError(file, b, a, all_names && !has_fallthrough);
      }
      if (ab.shared && warnings != nullptr) {
        warnings->push_back(Where(file, b.node.Mark()) + ": quantize: " + a.owner + " '" + a.text +
                            "' and " + b.owner + " '" + b.text + "' both match names such as '" +
                            ShowName(*ab.shared) + "'; a weight named so would be refused");
      }
    }
  }
  return Status::Ok();
}

// A group whose every pattern earlier groups' patterns cover gets no weight.
void CheckGroupPatterns(const std::string& file, const YAML::Node& groups, PatternOracle* oracle,
                        std::vector<std::string>* warnings) {
  std::vector<std::string> earlier;
  size_t number = 0;
  for (const YAML::Node& group : groups) {
    ++number;
    if (!group.IsMap()) return;
    std::vector<WrittenPattern> own;
    CollectPatterns(ValueOf(group, "match"), "", &own);
    if (earlier.size() + own.size() > kMaxCheckedPatterns) return;
    bool dead = !own.empty();
    bool matches_some = false;
    for (const WrittenPattern& p : own) {
      const PatternRelation r = oracle->Relate(p.text, earlier);
      dead = dead && r.decided && r.covered;
      matches_some = matches_some || r.matches_some;
    }
    if (dead && warnings != nullptr) {
      const YAML::Node name = ValueOf(group, "name");
      const std::string which =
          "group " + std::to_string(number) + (name.IsScalar() ? " ('" + name.Scalar() + "')" : "");
      warnings->push_back(
          Where(file, group.Mark()) + ": groups: " + which + " can never receive a weight: " +
          (matches_some ? "every name its patterns match, an earlier group's patterns match "
                          "first (a weight joins the first group it matches)"
                        : "its patterns match no name"));
    }
    for (const WrittenPattern& p : own) earlier.push_back(p.text);
  }
}

// --- shard_size, unmatched ---------------------------------------------------

Status ApplyShardSize(const std::string& file, const YAML::Node& value, PipelineOptions* out) {
  if (!value.IsScalar()) {
    return ErrorAt(file, value,
                   "shard_size: expected a size such as 4MiB or 4194304, got " + Describe(value));
  }
  Result<uint64_t> size = ParseByteSize(value.Scalar());
  if (!size.ok()) return ErrorAt(file, value, "shard_size: " + size.status().message());
  out->shard_size = *size;
  return Status::Ok();
}

Status ApplyUnmatched(const std::string& file, const YAML::Node& value, PipelineOptions* out) {
  const std::string s = value.IsScalar() ? value.Scalar() : "";
  if (s != "last" && s != "error") {
    return ErrorAt(file, value, "unmatched: expected last or error, got " + Describe(value));
  }
  out->grouping.unmatched_error = (s == "error");
  return Status::Ok();
}

// --- groups ------------------------------------------------------------------

Status ApplyGroupName(const std::string& file, const YAML::Node& value, GroupRule* out) {
  if (!value.IsScalar()) {
    return ErrorAt(file, value, "groups: name: expected a string, got " + Describe(value));
  }
  out->name = value.Scalar();
  return Status::Ok();
}

Status ApplyGroupMatch(const std::string& file, const YAML::Node& value, GroupRule* out) {
  return PatternList(file, value, "groups: match", &out->match);
}

constexpr KeyRule<GroupRule> kGroupKeys[] = {
    {"name", ApplyGroupName},
    {"match", ApplyGroupMatch},
};

Status ApplyByPrefix(const std::string& file, const YAML::Node& value, int* out) {
  return WholeNumberValue(file, value, "groups: by_prefix", 1, out);
}

constexpr KeyRule<int> kByPrefixKeys[] = {{"by_prefix", ApplyByPrefix}};

Status ApplyGroupList(const std::string& file, const YAML::Node& value, Grouping* out) {
  if (value.size() == 0) {
    return ErrorAt(file, value, "groups: empty list of groups (use `groups: single`)");
  }
  std::vector<GroupRule> rules;
  for (const YAML::Node& item : value) {
    const std::string which = "group " + std::to_string(rules.size() + 1);
    if (!item.IsMap()) {
      return ErrorAt(
          file, item,
          "groups: " + which + ": expected a mapping {name, match}, got " + Describe(item));
    }
    GroupRule rule;
    WD_RETURN_IF_ERROR(ApplyKeys<GroupRule>(kGroupKeys, file, item, "a group", &rule));
    if (rule.match.empty()) return ErrorAt(file, item, "groups: " + which + ": no 'match' key");
    rules.push_back(std::move(rule));
  }
  out->kind = Grouping::Kind::kPatterns;
  out->rules = std::move(rules);
  return Status::Ok();
}

Status ApplyGroups(const std::string& file, const YAML::Node& value, PipelineOptions* out) {
  Grouping& g = out->grouping;
  if (value.IsSequence()) return ApplyGroupList(file, value, &g);
  if (value.IsMap()) {
    int n = 0;
    WD_RETURN_IF_ERROR(ApplyKeys<int>(kByPrefixKeys, file, value, "groups", &n));
    if (n == 0) return ErrorAt(file, value, "groups: a mapping must be {by_prefix: N}");
    g.kind = Grouping::Kind::kByPrefix;
    g.prefix_components = n;
    g.rules.clear();
    return Status::Ok();
  }
  if (value.IsScalar() && value.Scalar() == "single") {
    g.kind = Grouping::Kind::kSingle;
    g.rules.clear();
    return Status::Ok();
  }
  return ErrorAt(
      file, value,
      "groups: expected single, a list of groups or {by_prefix: N}, got " + Describe(value));
}

// --- quantize ----------------------------------------------------------------

template <QuantDtype D>
Status ApplyQuantEntry(const std::string& file, const YAML::Node& value, QuantizeMap* out) {
  const std::string what = std::string("quantize: ") + QuantDtypeName(D);
  if (IsBool(value, false)) {
    return ErrorAt(file, value,
                   what + ": false is not allowed; write true or patterns, or omit it");
  }
  if (!IsBool(value, true)) {
    std::vector<std::string> patterns;
    WD_RETURN_IF_ERROR(PatternList(file, value, what, &patterns));
    out->patterns.emplace_back(D, std::move(patterns));
    return Status::Ok();
  }
  if (out->fallthrough != QuantDtype::kNone) {
    return ErrorAt(file, value,
                   what + ": only one dtype may be true (the fallthrough), and " +
                       QuantDtypeName(out->fallthrough) + " already is");
  }
  out->fallthrough = D;
  return Status::Ok();
}

constexpr KeyRule<QuantizeMap> kQuantizeKeys[] = {
    {"uint8", ApplyQuantEntry<QuantDtype::kUint8>},
    {"uint16", ApplyQuantEntry<QuantDtype::kUint16>},
    {"float16", ApplyQuantEntry<QuantDtype::kFloat16>},
};

Status ApplyQuantize(const std::string& file, const YAML::Node& value, PipelineOptions* out) {
  if (!value.IsMap()) {
    return ErrorAt(file, value,
                   "quantize: expected a mapping {uint8|uint16|float16: patterns | true}, got " +
                       Describe(value));
  }
  QuantizeMap map;
  WD_RETURN_IF_ERROR(ApplyKeys<QuantizeMap>(kQuantizeKeys, file, value, "quantize", &map));
  Status valid = ValidateQuantizeMap(map);
  if (!valid.ok()) return ErrorAt(file, value, valid.message());
  out->quantize = std::move(map);
  return Status::Ok();
}

// The one table of pipeline keys (docs/configuration.md, "Pipeline settings").
Status ApplyStrictPatterns(const std::string& file, const YAML::Node& value, PipelineOptions* out) {
  if (!IsBool(value, true) && !IsBool(value, false)) {
    return ErrorAt(file, value, "strict_patterns: expected true or false, got " + Describe(value));
  }
  out->strict_patterns = IsBool(value, true);
  return Status::Ok();
}

constexpr KeyRule<PipelineOptions> kPipelineKeys[] = {
    {"shard_size", ApplyShardSize},
    {"groups", ApplyGroups},
    {"unmatched", ApplyUnmatched},
    {"quantize", ApplyQuantize},
    {"strict_patterns", ApplyStrictPatterns},
};

}  // namespace

// What a node is, for "expected X, got Y" messages.
std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// Marks where each document starts, and the first scalar (keys included)
// that is not UTF-8: some escapes (\\N) make yaml-cpp 0.7 hand back a stray
// byte even from valid text. Events come once per node written in the text
// (an alias is one event, never expanded), so this is linear in the text.
// yaml-cpp 0.7 (Debian 12's) can report document after document at the same
// place without consuming input (a lone ",": upstream bug #1040), which is
// why YAML::LoadAll is never called.
class DocumentEvents : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string& value) override {
    if (!bad_scalar && !IsValidUtf8(value)) bad_scalar = mark;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  std::vector<YAML::Mark> starts;
  std::optional<YAML::Mark> bad_scalar;
};

// The first byte of `text` that is not valid UTF-8, as a mark; none if all is.
std::optional<YAML::Mark> FirstInvalidUtf8(const std::string& text) {
  if (IsValidUtf8(text)) return std::nullopt;
  YAML::Mark mark;
  mark.line = 0;
  mark.column = 0;
  size_t line_start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++mark.line;
      line_start = i + 1;
      continue;
    }
    // The shortest prefix of the rest that is not valid: widen up to 4 bytes.
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) continue;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (i + len > text.size() || !IsValidUtf8(text.substr(i, len))) {
      mark.pos = static_cast<int>(i);
      mark.column = static_cast<int>(i - line_start);
      return mark;
    }
    i += len - 1;
  }
  return std::nullopt;
}

// The single document of `text` (a null node when there is none).
Result<YAML::Node> LoadOneDocument(const std::string& text, const std::string& file) {
  if (text.size() > kMaxConfigBytes) {
    return Status::Config(file + ": " + std::to_string(text.size()) +
                          " bytes; a config file is at most " + std::to_string(kMaxConfigBytes));
  }
  if (std::optional<YAML::Mark> bad = FirstInvalidUtf8(text)) {
    return Status::Config(Where(file, *bad) + ": not valid UTF-8 (YAML text is UTF-8)");
  }
  // At most three documents are looked at: enough to tell "one", "more than
  // one" and "stuck in place" apart, so no input can make this loop.
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentEvents events;
  for (int i = 0; i < 3 && parser.HandleNextDocument(events); ++i) {
  }
  const std::vector<YAML::Mark>& m = events.starts;
  for (size_t i = 1; i < m.size(); ++i) {
    if (m[i].pos == m[i - 1].pos) {
      return Status::Config(Where(file, m[i]) +
                            ": not valid YAML here (a stray ',', or a flow indicator such as "
                            "',' '[' ']' '{' '}' outside a flow collection: quote the value)");
    }
  }
  if (m.size() > 1) {
    return Status::Config(Where(file, m[1]) + ": expected one YAML document, found another here");
  }
  if (events.bad_scalar) {
    return Status::Config(Where(file, *events.bad_scalar) +
                          ": not valid UTF-8 (an escape in a quoted string, such as \\N, gave a "
                          "stray byte: write the character itself)");
  }
  return YAML::Load(text);
}

Result<std::string> ReadConfigFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Config("cannot read config " + path + ": " + std::strerror(errno));
  struct stat st;
  std::string text;
  Status status;
  if (::fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
    status = Status::Config("cannot read config " + path + ": not a regular file");
  }
  char buf[65536];
  while (status.ok()) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n > 0) {
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxConfigBytes) {
        status = Status::Config("cannot read config " + path + ": larger than " +
                                std::to_string(kMaxConfigBytes) + " bytes");
      }
    } else if (errno != EINTR) {
      status = Status::Config("cannot read config " + path + ": " + std::strerror(errno));
    }
  }
  ::close(fd);
  if (!status.ok()) return status;
  return text;
}

Status WholeNumberValue(const std::string& file, const YAML::Node& value, const std::string& what,
                        int min, int* out) {
  const std::string s = value.IsScalar() ? value.Scalar() : "";
  const bool digits = !s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == s.npos;
  if (!digits || std::stoi(s) < min) {
    return ErrorAt(
        file, value,
        what + ": expected a whole number >= " + std::to_string(min) + ", got " + Describe(value));
  }
  *out = std::stoi(s);
  return Status::Ok();
}

std::string Where(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

Status ErrorAt(const std::string& file, const YAML::Node& node, const std::string& message) {
  return Status::Config(Where(file, node.Mark()) + ": " + message);
}

Status FromException(const std::string& file, const YAML::Exception& e, const std::string& text) {
  // yaml-cpp 0.7 words its depth guard "bad file".
  if (dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr) {
    return Status::Config(Where(file, e.mark) + ": YAML nested too deeply");
  }
  if (std::optional<Status> glob = UnquotedGlob(file, e, text)) return *glob;
  return Status::Config(Where(file, e.mark) + ": " + (e.msg.empty() ? e.what() : e.msg));
}

const char* ClosestKey(const std::string& key, std::span<const char* const> known) {
  const char* best = nullptr;
  size_t best_distance = 0;
  for (const char* candidate : known) {
    const std::string k = candidate;
    const size_t limit = std::min(key.size(), k.size()) <= 4 ? 1 : 2;
    const size_t d = TypoDistance(Lower(key), Lower(k), limit);
    if (d <= limit && (best == nullptr || d < best_distance)) {
      best = candidate;
      best_distance = d;
    }
  }
  return best;
}

std::string UnknownKeyMessage(const std::string& key, const std::string& what,
                              std::span<const char* const> known) {
  const std::string head = "unknown key '" + key + "' in " + what;
  if (const char* close = ClosestKey(key, known)) return head + "; did you mean '" + close + "'?";
  return head + " (expected " + KeyList(known) + ")";
}

std::string KeyList(std::span<const char* const> keys) {
  std::string out;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) out += (i + 1 == keys.size()) ? " or " : ", ";
    out += keys[i];
  }
  return out;
}

Status VisitMapping(const std::string& file, const YAML::Node& node, const std::string& what,
                    const KeyVisitor& visit) {
  if (node.IsNull()) return Status::Ok();
  if (!node.IsMap()) {
    return ErrorAt(file, node, what + ": expected a mapping, got " + Describe(node));
  }
  std::set<std::string> seen;
  // Copies: yaml-cpp iterators hand out proxies that die with the expression.
  for (const auto& entry : node) {
    const YAML::Node key = entry.first;
    const YAML::Node value = entry.second;
    if (!key.IsScalar()) {
      return ErrorAt(file, key, what + ": keys must be plain strings, got " + Describe(key));
    }
    if (!seen.insert(key.Scalar()).second) {
      return ErrorAt(file, key, what + ": duplicate key '" + key.Scalar() + "'");
    }
    WD_RETURN_IF_ERROR(visit(key.Scalar(), key, value));
  }
  return Status::Ok();
}

std::span<const KeyRule<PipelineOptions>> PipelineKeys() { return kPipelineKeys; }

Status ApplyPipelineNode(const std::string& file, const YAML::Node& node, PipelineOptions* options,
                         std::vector<std::string>* warnings) {
  WD_RETURN_IF_ERROR(ApplyKeys(PipelineKeys(), file, node, "pipeline settings", options));
  Status valid = ValidatePipelineOptions(*options);
  if (!valid.ok()) return ErrorAt(file, node, valid.message());
  return CheckPatterns(file, node, warnings);
}

Status CheckPatterns(const std::string& file, const YAML::Node& settings,
                     std::vector<std::string>* warnings) {
  if (!settings.IsMap()) return Status::Ok();
  PatternOracle oracle;
  if (const YAML::Node quantize = ValueOf(settings, "quantize"); quantize.IsMap()) {
    WD_RETURN_IF_ERROR(CheckQuantizePatterns(file, quantize, &oracle, warnings));
  }
  if (const YAML::Node groups = ValueOf(settings, "groups"); groups.IsSequence()) {
    CheckGroupPatterns(file, groups, &oracle, warnings);
  }
  return Status::Ok();
}

}  // namespace yaml

Result<PipelineOptions> ParsePipelineConfigOver(const std::string& yaml_text,
                                                const std::string& file,
                                                const PipelineOptions& base,
                                                std::vector<std::string>* warnings) {
  std::vector<std::string> found;
  Result<PipelineOptions> r = yaml::ParseDocument<PipelineOptions>(
      yaml_text, file, [&](const YAML::Node& root) -> Result<PipelineOptions> {
        PipelineOptions options = base;
        WD_RETURN_IF_ERROR(yaml::ApplyPipelineNode(file, root, &options, &found));
        return options;
      });
  if (warnings != nullptr) *warnings = r.ok() ? std::move(found) : std::vector<std::string>();
  return r;
}

Result<PipelineOptions> ParsePipelineConfig(const std::string& yaml_text, const std::string& file,
                                            std::vector<std::string>* warnings) {
  return ParsePipelineConfigOver(yaml_text, file, PipelineOptions(), warnings);
}

Result<PipelineOptions> LoadPipelineConfig(const std::string& path) {
  WD_ASSIGN_OR_RETURN(std::string text, yaml::ReadConfigFile(path));
  return ParsePipelineConfig(text, path);
}

}  // namespace wd
