#include "core/model_json.h"

#include <doctest/doctest.h>

#include <string>

namespace wd {
namespace {

struct CheckRow {
  std::string text;
  std::string error;  // "" = accepted; else a part of the message
};

TEST_CASE("model.json checking: rows of text and verdict") {
  const CheckRow rows[] = {
      {R"({"format": "graph-model"})", ""},
      {"{}", ""},
      {"\xEF\xBB\xBF{\"a\": 1}", ""},
      {" \n{\"a\": [1, {\"b\": null}]}\n ", ""},
      {"[1, 2]", "not a JSON object"},
      {"3", "not a JSON object"},
      {"\"s\"", "not a JSON object"},
      {"", "not valid JSON"},
      {",", "not valid JSON"},
      {R"({"a": 1} x)", "not valid JSON"},
      {R"({"a": 1,})", "not valid JSON"},
      {"{\"a\": \"\xc3\"}", "not valid JSON"},
      {std::string(100000, '['), "not a JSON object"},
      {"{\"a\": " + std::string(100000, '['), "nested more than 512 levels"},
      {"{\"a\": " + std::string(511, '[') + std::string(511, ']') + "}", ""},
      {"{\"a\": " + std::string(512, '[') + std::string(512, ']') + "}", "nested more than 512"},
  };
  for (const CheckRow& row : rows) {
    CAPTURE(row.text.substr(0, 40));
    Status st = CheckModelJson(row.text, "b/model.json");
    if (row.error.empty()) {
      CHECK(st.ok());
    } else {
      REQUIRE_FALSE(st.ok());
      CHECK(st.kind() == ErrorKind::kBundle);
      CHECK(st.message().rfind("b/model.json: ", 0) == 0);
      CHECK(st.message().find(row.error) != std::string::npos);
    }
  }
}

struct SpliceRow {
  std::string original;
  std::string expected;  // with manifest "[M]"
};

TEST_CASE("the weightsManifest splice keeps every other byte and key order") {
  const SpliceRow rows[] = {
      // Absent: appended as the last member, whitespace before '}' kept.
      {R"({"z": 1, "a": {"y": 2, "b": 3}})",
       R"({"z": 1, "a": {"y": 2, "b": 3}, "weightsManifest": [M]})"},
      {"{\n  \"z\": 1\n}\n", "{\n  \"z\": 1, \"weightsManifest\": [M]\n}\n"},
      {"{}", R"({"weightsManifest": [M]})"},
      {"{ }", R"({ "weightsManifest": [M]})"},
      // Present: only its value changes, wherever it sits.
      {R"({"weightsManifest": [{"paths": []}], "signature": {"outputs": {"z": 1, "a": 2}}})",
       R"({"weightsManifest": [M], "signature": {"outputs": {"z": 1, "a": 2}}})"},
      {R"({"b": "}", "weightsManifest" :  null , "a": "\"{"})",
       R"({"b": "}", "weightsManifest" :  [M] , "a": "\"{"})"},
      // An escaped spelling of the key is the same key to JSON.parse.
      {R"({"weights\u004danifest": 1})", R"({"weights\u004danifest": [M]})"},
      // A nested "weightsManifest" is not the top-level one.
      {R"({"m": {"weightsManifest": 1}})",
       R"({"m": {"weightsManifest": 1}, "weightsManifest": [M]})"},
      // Two top-level keys (JSON.parse keeps the last): both replaced.
      {R"({"weightsManifest": 1, "weightsManifest": 2})",
       R"({"weightsManifest": [M], "weightsManifest": [M]})"},
      {"\xEF\xBB\xBF{\"a\": true}", "\xEF\xBB\xBF{\"a\": true, \"weightsManifest\": [M]}"},
      {R"({"s": "a\\", "n": -1.5e3})", R"({"s": "a\\", "n": -1.5e3, "weightsManifest": [M]})"},
  };
  for (const SpliceRow& row : rows) {
    CAPTURE(row.original);
    Result<std::string> out = ModelJsonWithManifest(row.original, "[M]", "b/model.json");
    REQUIRE(out.ok());
    CHECK(*out == row.expected);
  }
}

TEST_CASE("the splice refuses text that is not a checked model.json") {
  Result<std::string> out = ModelJsonWithManifest("[1]", "[]", "b/model.json");
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().message() == "b/model.json: not a JSON object (expected a tfjs model.json)");
}

}  // namespace
}  // namespace wd
