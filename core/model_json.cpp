// model.json checking and the weightsManifest splice (docs/formats.md).
#include "core/model_json.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/file_system.h"

namespace wd {
namespace {

// nlohmann's SAX parser keeps its own stack on the heap (no recursion); this
// handler only counts depth and remembers why it stopped.
class DepthChecker : public nlohmann::json::json_sax_t {
 public:
  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(true); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(false); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& e) override {
    error = "not valid JSON at byte " + std::to_string(position) + ": " + e.what();
    return false;
  }

  std::string error;

 private:
  bool Value() {
    if (depth_ == 0) {
      error = "not a JSON object (expected a tfjs model.json)";
      return false;
    }
    return true;
  }
  bool Open(bool object) {
    if (depth_ == 0 && !object) return Value();
    if (++depth_ > kMaxModelJsonDepth) {
      error = "nested more than " + std::to_string(kMaxModelJsonDepth) +
              " levels deep (a tfjs model.json nests a few dozen)";
      return false;
    }
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }
  int depth_ = 0;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && IsSpace(s[i])) ++i;
  return i;
}

// `i` at an opening quote; returns the index just past the closing one.
size_t SkipString(std::string_view s, size_t i) {
  for (++i; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\') ++i;
  }
  return i + 1;
}

// `i` at the first byte of a value; returns the index just past it.
size_t SkipValue(std::string_view s, size_t i) {
  if (s[i] == '"') return SkipString(s, i);
  if (s[i] != '{' && s[i] != '[') {
    while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !IsSpace(s[i])) ++i;
    return i;
  }
  size_t depth = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (c == '"') {
      i = SkipString(s, i);
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if ((c == '}' || c == ']') && --depth == 0) return i + 1;
    ++i;
  }
  return i;
}

struct Member {
  std::string key;  // decoded
  size_t value_begin = 0;
  size_t value_end = 0;
};

// The top-level members of a checked JSON object, and where its '}' is.
std::vector<Member> TopLevelMembers(std::string_view s, size_t* close) {
  std::vector<Member> out;
  size_t i = 0;
  if (s.substr(0, 3) == "\xEF\xBB\xBF") i = 3;  // a UTF-8 byte order mark
  i = SkipSpace(s, i) + 1;                      // past '{'
  for (;;) {
    i = SkipSpace(s, i);
    if (s[i] == '}') break;
    const size_t key_end = SkipString(s, i);
    Member m;
    m.key = nlohmann::json::parse(s.substr(i, key_end - i)).get<std::string>();
    i = SkipSpace(s, SkipSpace(s, key_end) + 1);  // past ':'
    m.value_begin = i;
    m.value_end = i = SkipValue(s, i);
    out.push_back(std::move(m));
    i = SkipSpace(s, i);
    if (s[i] == '}') break;
    ++i;  // past ','
  }
  *close = i;
  return out;
}

}  // namespace

Status CheckModelJson(std::string_view text, const std::string& where) {
  if (text.size() > kMaxModelJsonBytes) {
    return Status::Bundle(where + ": " + std::to_string(text.size()) +
                          " bytes, more than the limit of " + std::to_string(kMaxModelJsonBytes));
  }
  DepthChecker checker;
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text, &checker, nlohmann::json::input_format_t::json,
                                   /*strict=*/true);
  } catch (const std::exception& e) {
    checker.error = std::string("not valid JSON: ") + e.what();
  }
  if (ok) return Status::Ok();
  if (checker.error.empty()) checker.error = "not valid JSON";
  return Status::Bundle(where + ": " + checker.error);
}

Result<std::string> ReadModelJson(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (!ec && size > kMaxModelJsonBytes) {
    return Status::Bundle(path + ": " + std::to_string(size) + " bytes, more than the limit of " +
                          std::to_string(kMaxModelJsonBytes));
  }
  WD_ASSIGN_OR_RETURN(std::string text, DefaultFileSystem().ReadFile(path, kMaxModelJsonBytes));
  WD_RETURN_IF_ERROR(CheckModelJson(text, path));
  return text;
}

Result<std::string> ModelJsonWithManifest(std::string_view original, std::string_view manifest_json,
                                          const std::string& where) {
  WD_RETURN_IF_ERROR(CheckModelJson(original, where));
  size_t close = 0;
  std::vector<Member> members;
  try {
    members = TopLevelMembers(original, &close);
  } catch (const std::exception& e) {  // not reached for checked text
    return Status::Internal(where + ": cannot read the top-level keys of model.json: " + e.what());
  }
  std::string out;
  out.reserve(original.size() + manifest_json.size() + 32);
  size_t at = 0;
  bool replaced = false;
  for (const Member& m : members) {
    if (m.key != "weightsManifest") continue;
    out.append(original.substr(at, m.value_begin - at));
    out.append(manifest_json);
    at = m.value_end;
    replaced = true;
  }
  if (replaced) {
    out.append(original.substr(at));
    return out;
  }
  const size_t insert_at = members.empty() ? close : members.back().value_end;
  out.append(original.substr(0, insert_at));
  out.append(members.empty() ? "\"weightsManifest\": " : ", \"weightsManifest\": ");
  out.append(manifest_json);
  out.append(original.substr(insert_at));
  return out;
}

}  // namespace wd
