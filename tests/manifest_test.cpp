#include "core/manifest.h"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "tests/test_util.h"

namespace wd {
namespace {

TEST_CASE("float repr follows Python's repr for every range") {
  struct Row {
    double v;
    const char* repr;
  };
  const Row rows[] = {
      {0.0, "0.0"},
      {-0.0, "-0.0"},
      {1.0, "1.0"},
      {-5.0, "-5.0"},
      {2.5, "2.5"},
      {0.1, "0.1"},
      {1e-05, "1e-05"},
      {0.0001, "0.0001"},
      {0.00012, "0.00012"},
      {1.2e-05, "1.2e-05"},
      {1e16, "1e+16"},
      {1.5e16, "1.5e+16"},
      {9999999999999998.0, "9999999999999998.0"},
      {123456789012345.6, "123456789012345.6"},
      {1e15, "1000000000000000.0"},
      {5e-324, "5e-324"},
      {1.7976931348623157e+308, "1.7976931348623157e+308"},
      {1e100, "1e+100"},
      {0.010588235481112611, "0.010588235481112611"},
      {-7.299931517605597, "-7.299931517605597"},
      {0.00014496071165665032, "0.00014496071165665032"},
      {-0.9952941352245854, "-0.9952941352245854"},
      {1.0 / 3.0, "0.3333333333333333"},
      {100.0, "100.0"},
      {123.456, "123.456"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.repr);
    CHECK(PythonFloatRepr(row.v) == row.repr);
  }
}

TEST_CASE("json strings escape like json.dumps with ensure_ascii") {
  struct Row {
    std::string in;
    std::string out;
  };
  const Row rows[] = {
      {"dense/kernel", R"("dense/kernel")"},
      {"", R"("")"},
      {"a\"b\\c", R"("a\"b\\c")"},
      {"\n\r\t\b\f", R"("\n\r\t\b\f")"},
      {std::string("\x01\x1f\x7f", 3), R"("\u0001\u001f\u007f")"},
      {std::string("nul\0x", 5), R"("nul\u0000x")"},
      {"caf\xc3\xa9", R"("caf\u00e9")"},
      {"\xe2\x82\xac", R"("\u20ac")"},
      {"\xf0\x9f\x98\x80", R"("\ud83d\ude00")"},
      {"/ and '", R"("/ and '")"},
      {"bad\xff", R"("bad\ufffd")"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.out);
    CHECK(PythonJsonString(row.in) == row.out);
  }
}

TEST_CASE("manifest JSON is byte-identical to every golden reference manifest") {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(test::SourcePath("golden"))) {
    const std::string path = entry.path().string() + "/expected/weights_manifest.json";
    if (!std::filesystem::exists(path)) continue;
    CAPTURE(path);
    const std::string golden = test::ReadFile(path);
    Result<Manifest> m = ParseManifest(golden, path);
    REQUIRE_MESSAGE(m.ok(), m.status().message());
    CHECK(ManifestToJson(*m) == golden);
    ++checked;
  }
  CHECK(checked >= 10);
}

TEST_CASE("manifest written from data matches the reference writer's layout") {
  Manifest m(2);
  m[0].paths = {"group1-shard1of1.bin"};
  m[0].weights.push_back({"w1", {3}, "float32", std::nullopt});
  m[0].weights.push_back(
      {"q", {2, 1}, "float32", ManifestQuantization{QuantDtype::kUint8, -0.0, 1.0}});
  m[0].weights.push_back({"h", {}, "float32", ManifestQuantization{QuantDtype::kFloat16, 0, 1}});
  CHECK(ManifestToJson(m) ==
        R"([{"paths": ["group1-shard1of1.bin"], "weights": [)"
        R"({"name": "w1", "shape": [3], "dtype": "float32"}, )"
        R"({"name": "q", "shape": [2, 1], "dtype": "float32", "quantization": )"
        R"({"dtype": "uint8", "min": -0.0, "scale": 1.0, "original_dtype": "float32"}}, )"
        R"({"name": "h", "shape": [], "dtype": "float32", "quantization": )"
        R"({"dtype": "float16", "original_dtype": "float32"}}]}, {"paths": [], "weights": []}])");
}

TEST_CASE("path prefix qualifies every shard path and nothing else") {
  Manifest m(1);
  m[0].paths = {"group1-shard1of2.bin", "group1-shard2of2.bin"};
  m[0].weights.push_back({"w", {1}, "int32", std::nullopt});
  Manifest p = WithPathPrefix(m, "7/");
  CHECK(p[0].paths == std::vector<std::string>{"7/group1-shard1of2.bin", "7/group1-shard2of2.bin"});
  CHECK(p[0].weights[0].name == "w");
  CHECK(m[0].paths[0] == "group1-shard1of2.bin");
}

TEST_CASE("malformed manifests are refused naming the file and the entry") {
  struct Row {
    std::string text;
    std::string error;  // expected substring
  };
  const Row rows[] = {
      {"[{\"paths\": [", "m.json: not valid JSON"},
      {"{}", "m.json: a weights manifest must be a JSON list"},
      {"[1]", "m.json: group 1: must be an object"},
      {R"([{"weights": []}])", "m.json: group 1: needs a list \"paths\""},
      {R"([{"paths": [3], "weights": []}])", "group 1: \"paths\" holds 3, not a string"},
      {R"([{"paths": [], "weights": [{"name": "a", "shape": [-1], "dtype": "float32"}]}])",
       "m.json: group 1 weight 1 ('a'): \"shape\" holds -1, not a size"},
      {R"([{"paths": [], "weights": [{"shape": [], "dtype": "float32"}]}])",
       "group 1 weight 1: needs a string \"name\""},
      {R"([{"paths": [], "weights": [{"name": "a", "shape": [], "dtype": "float64"}]}])",
       "weight 1 ('a'): unknown dtype 'float64'"},
      {R"([{"paths": [], "weights": [{"name": "k", "shape": [], "dtype": "float32",)"
       R"( "quantization": {"dtype": "uint8", "min": 0}}]}])",
       "('k'): uint8 quantization needs numeric \"min\" and \"scale\""},
      {R"([{"paths": [], "weights": [{"name": "k", "shape": [], "dtype": "float32",)"
       R"( "quantization": {"dtype": "int4"}}]}])",
       "('k'): unknown quantization dtype 'int4'"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    Result<Manifest> m = ParseManifest(row.text, "m.json");
    REQUIRE_FALSE(m.ok());
    CHECK_MESSAGE(m.status().message().find(row.error) != std::string::npos, m.status().message());
  }
}

TEST_CASE("parsed manifest keeps quantization values exactly") {
  const std::string text =
      R"([{"paths": ["a.bin"], "weights": [{"name": "k", "shape": [2], "dtype": "float32", )"
      R"("quantization": {"dtype": "uint16", "min": -7.299931517605597, )"
      R"("scale": 0.00014496071165665032, "original_dtype": "float32"}}]}])";
  Result<Manifest> m = ParseManifest(text, "m.json");
  REQUIRE(m.ok());
  const ManifestQuantization& q = *(*m)[0].weights[0].quantization;
  CHECK(q.dtype == QuantDtype::kUint16);
  CHECK(q.min == -7.299931517605597);
  CHECK(q.scale == 0.00014496071165665032);
  CHECK(ManifestToJson(*m) == text);
}

}  // namespace
}  // namespace wd
