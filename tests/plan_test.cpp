#include "core/plan.h"

#include <doctest/doctest.h>

#include "tests/test_util.h"

namespace wd {
namespace {

using test::Floats;
using test::Npy;

// A folder bundle with one float32 [n] weight per name (sorted names give
// bundle order).
std::unique_ptr<Bundle> FolderBundle(const test::TempDir& d,
                                     std::initializer_list<std::pair<std::string, int>> weights) {
  for (const auto& [name, n] : weights) {
    test::WriteFile(d / ("b/" + name + ".npy"),
                    Npy("<f4", "(" + std::to_string(n) + ",)", std::string(4 * n, '\0')));
  }
  auto b = Bundle::Open(d / "b");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  return std::move(b).value();
}

std::vector<std::vector<std::string>> GroupNames(const Bundle& b, const Plan& p) {
  std::vector<std::vector<std::string>> out;
  for (const auto& g : p.groups) {
    out.emplace_back();
    for (const auto& w : g.weights) out.back().push_back(b.weights()[w.entry].name);
  }
  return out;
}

TEST_CASE("fnmatch patterns: '*' crosses '/', case-sensitive") {
  struct Row {
    const char* pattern;
    const char* name;
    bool match;
  } rows[] = {
      {"*/kernel", "dense/kernel", true},
      {"*/kernel", "a/b/kernel", true},
      {"*", "a/b/c", true},
      {"dense/*", "Dense/kernel", false},
      {"?/w", "a/w", true},
      {"[ab]/w", "c/w", false},
      {"enc/*", "enc", false},
      {"kernel", "dense/kernel", false},
  };
  for (const Row& r : rows) {
    CAPTURE(r.pattern);
    CAPTURE(r.name);
    CHECK(MatchesPattern(r.pattern, r.name) == r.match);
  }
}

TEST_CASE("pattern groups: first match wins, unmatched weights form a last group") {
  test::TempDir d;
  auto b = FolderBundle(d, {{"dec/w", 1}, {"enc/b", 1}, {"enc/w", 1}, {"head", 1}});
  PipelineOptions o;
  o.grouping.kind = Grouping::Kind::kPatterns;
  o.grouping.rules = {{"enc", {"enc/*"}}, {"any-w", {"*/w", "enc/w"}}};
  auto p = MakePlan(*b, o);
  REQUIRE(p.ok());
  CHECK(GroupNames(*b, *p) ==
        std::vector<std::vector<std::string>>{{"enc/b", "enc/w"}, {"dec/w"}, {"head"}});
  CHECK(p->groups[2].shards[0].name == "group3-shard1of1.bin");

  o.grouping.unmatched_error = true;
  auto e = MakePlan(*b, o);
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().message().find("weight 'head'") != std::string::npos);
  CHECK(e.status().message().find("unmatched: error") != std::string::npos);
}

TEST_CASE("groups that match nothing are skipped and not numbered") {
  test::TempDir d;
  auto b = FolderBundle(d, {{"b/x", 1}});
  PipelineOptions o;
  o.grouping.kind = Grouping::Kind::kPatterns;
  o.grouping.rules = {{"", {"a/*"}}, {"", {"b/*"}}};
  auto p = MakePlan(*b, o);
  REQUIRE(p.ok());
  REQUIRE(p->groups.size() == 1);
  CHECK(p->groups[0].shards[0].name == "group1-shard1of1.bin");
}

TEST_CASE("by_prefix groups by the first N path components in order of first appearance") {
  test::TempDir d;
  auto b = FolderBundle(d, {{"a/x/k", 1}, {"a/y/k", 1}, {"b/k", 1}, {"a/x/b", 1}, {"top", 1}});
  PipelineOptions o;
  o.grouping.kind = Grouping::Kind::kByPrefix;
  o.grouping.prefix_components = 1;
  auto p = MakePlan(*b, o);
  REQUIRE(p.ok());
  CHECK(GroupNames(*b, *p) ==
        std::vector<std::vector<std::string>>{{"a/x/b", "a/x/k", "a/y/k"}, {"b/k"}, {"top"}});
  o.grouping.prefix_components = 2;
  p = MakePlan(*b, o);
  REQUIRE(p.ok());
  CHECK(GroupNames(*b, *p) ==
        std::vector<std::vector<std::string>>{{"a/x/b", "a/x/k"}, {"a/y/k"}, {"b/k"}, {"top"}});
}

TEST_CASE("a weight matched by two quantization dtypes is a configuration error") {
  test::TempDir d;
  auto b = FolderBundle(d, {{"dense/kernel", 2}});
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kFloat16, {"dense/*"}}};
  auto p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kConfig);
  CHECK(p.status().message().find("'dense/kernel'") != std::string::npos);
  CHECK(p.status().message().find("'*/kernel'") != std::string::npos);
  CHECK(p.status().message().find("'dense/*'") != std::string::npos);
  // The same dtype twice is no conflict.
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kUint8, {"dense/*"}}};
  CHECK(MakePlan(*b, o).ok());
}

TEST_CASE("quantization applies only to float32 weights; the fallthrough takes the rest") {
  test::TempDir d;
  test::WriteFile(d / "b/f.npy", Npy("<f8", "(2,)", std::string(16, '\0')));
  test::WriteFile(d / "b/i.npy", Npy("<i4", "(2,)", std::string(8, '\0')));
  test::WriteFile(d / "b/k.npy", Npy("<f4", "(3,)", std::string(12, '\0')));
  auto b = Bundle::Open(d / "b");
  REQUIRE(b.ok());
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"k"}}};
  o.quantize.fallthrough = QuantDtype::kFloat16;
  auto p = MakePlan(**b, o);
  REQUIRE(p.ok());
  const auto& ws = p->groups[0].weights;
  CHECK(ws[0].quant == QuantDtype::kFloat16);  // f8 maps to float32, then float16
  CHECK(ws[0].encoded_bytes == 4);
  CHECK(ws[1].quant == QuantDtype::kNone);  // int32 is left alone
  CHECK(ws[1].encoded_bytes == 8);
  CHECK(ws[2].quant == QuantDtype::kUint8);
  CHECK(ws[2].encoded_bytes == 3);
  CHECK(ws[2].offset == 12);
}

TEST_CASE("shards are cut at shard_size with the remainder last") {
  struct Row {
    uint64_t total, size;
    std::vector<uint64_t> bytes;
  } rows[] = {
      {0, 4, {}}, {1, 4, {1}}, {4, 4, {4}}, {5, 4, {4, 1}}, {12, 4, {4, 4, 4}}, {13, 5, {5, 5, 3}},
  };
  for (const Row& r : rows) {
    CAPTURE(r.total);
    auto shards = CutShards(r.total, r.size, 2);
    std::vector<uint64_t> got;
    for (const auto& s : shards) got.push_back(s.bytes);
    CHECK(got == r.bytes);
    for (size_t i = 0; i < shards.size(); ++i) {
      CHECK(shards[i].offset == i * r.size);
      CHECK(shards[i].name ==
            "group2-shard" + std::to_string(i + 1) + "of" + std::to_string(shards.size()) + ".bin");
    }
  }
}

TEST_CASE("the tfjs uniform-shard hazard is recognised exactly") {
  struct Row {
    std::vector<uint64_t> sizes;
    bool hazard;
  } rows[] = {
      {{}, false},           {{80000}, false},      {{76, 80000}, true},    {{76, 76, 900}, true},
      {{76, 76, 76}, false}, {{76, 76, 10}, false}, {{76, 77, 900}, false}, {{100, 50, 900}, false},
      {{4, 4, 5}, true},
  };
  for (const Row& r : rows) {
    CAPTURE(r.sizes.size());
    CHECK(IsTfjsUniformShardHazard(r.sizes) == r.hazard);
  }
}

TEST_CASE("a hazardous layout is cut so the last shard is never larger than the first") {
  test::TempDir d;
  // small/w: 19 int32 = 76 bytes; big/w: 20000 float32 = 80000 bytes (golden case 10).
  test::WriteFile(d / "b/big/w.npy", Npy("<f4", "(20000,)", std::string(80000, '\0')));
  test::WriteFile(d / "b/small/w.npy", Npy("<i4", "(19,)", std::string(76, '\0')));
  auto b = Bundle::Open(d / "b");
  REQUIRE(b.ok());
  PipelineOptions o;
  o.grouping.kind = Grouping::Kind::kPatterns;
  o.grouping.rules = {{"", {"small/*"}}};
  auto p = MakePlan(**b, o);
  REQUIRE(p.ok());
  CHECK(p->hazard_split);
  REQUIRE(p->groups.size() == 2);
  const auto& s = p->groups[1].shards;
  REQUIRE(s.size() == 2);
  CHECK(s[0].name == "group2-shard1of2.bin");
  CHECK(s[0].bytes == 79999);
  CHECK(s[1].name == "group2-shard2of2.bin");
  CHECK(s[1].offset == 79999);
  CHECK(s[1].bytes == 1);
  std::vector<uint64_t> sizes = {p->groups[0].shards[0].bytes, s[0].bytes, s[1].bytes};
  CHECK_FALSE(IsTfjsUniformShardHazard(sizes));
}

// dense/bias, dense/kernel (float32) and step (int32), in that order.
std::unique_ptr<Bundle> DenseAndStep(const test::TempDir& d) {
  test::WriteFile(d / "b/dense/bias.npy", Npy("<f4", "(2,)", std::string(8, '\0')));
  test::WriteFile(d / "b/dense/kernel.npy", Npy("<f4", "(2,)", std::string(8, '\0')));
  test::WriteFile(d / "b/step.npy", Npy("<i4", "(1,)", std::string(4, '\0')));
  auto b = Bundle::Open(d / "b");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  return std::move(b).value();
}

std::vector<std::string> UnusedMessages(const Plan& p) {
  std::vector<std::string> out;
  for (const UnusedPattern& u : p.unused_patterns) out.push_back(UnusedPatternMessage(u));
  return out;
}

TEST_CASE("patterns without effect are reported once each, quantize first, in settings order") {
  test::TempDir d;
  auto b = DenseAndStep(d);
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernal", "*/kernel", "*/kernal"}},
                         {QuantDtype::kUint16, {"step"}},
                         {QuantDtype::kUint8, {"*/kernal"}}};
  o.grouping.kind = Grouping::Kind::kPatterns;
  o.grouping.rules = {{"", {"dense/*"}}, {"", {"dense/k*", "s*"}}, {"extra", {"x*"}}};
  auto p = MakePlan(*b, o);
  REQUIRE_MESSAGE(p.ok(), p.status().message());
  CHECK(UnusedMessages(*p) == std::vector<std::string>{
                                  "quantize uint8 pattern '*/kernal' matched no weight",
                                  "quantize uint16 pattern 'step' matched only non-float weights "
                                  "(not quantized)",
                                  "group 2 pattern 'dense/k*' matched only weights an earlier "
                                  "group took",
                                  "group 3 (extra) pattern 'x*' matched no weight",
                              });
  // Settings whose every pattern has an effect report nothing.
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kFloat16, {"*/b*"}}};
  o.grouping.rules = {{"", {"dense/*", "*/kernel"}}, {"", {"s*"}}};
  p = MakePlan(*b, o);
  REQUIRE(p.ok());
  CHECK(p->unused_patterns.empty());
}

TEST_CASE("with strict_patterns an unused pattern refuses the bundle, naming every one") {
  test::TempDir d;
  auto b = DenseAndStep(d);
  PipelineOptions o;
  o.strict_patterns = true;
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}};
  CHECK(MakePlan(*b, o).ok());
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernal"}}, {QuantDtype::kUint16, {"step"}}};
  auto p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kConfig);
  CHECK(p.status().message() ==
        b->path() +
            ": quantize uint8 pattern '*/kernal' matched no weight; quantize uint16 pattern "
            "'step' matched only non-float weights (not quantized) (an error with "
            "strict_patterns / --strict-patterns)");
}

TEST_CASE("a catch-all quantize pattern in a conflict suggests the fallthrough") {
  test::TempDir d;
  auto b = DenseAndStep(d);
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kFloat16, {"*"}}};
  auto p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().kind() == ErrorKind::kConfig);
  CHECK(p.status().message().find("instead of '*': --quantize-rest float16 on the command line, "
                                  "`float16: true` under quantize in YAML") != std::string::npos);
  // A pattern that matches every weight of the bundle is a catch-all too.
  o.quantize.patterns = {{QuantDtype::kUint16, {"[ds]*"}}, {QuantDtype::kUint8, {"*/kernel"}}};
  p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().message().find("instead of '[ds]*': --quantize-rest uint16") !=
        std::string::npos);
  // Two narrow patterns, or another dtype already the fallthrough: no such hint.
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kFloat16, {"dense/*"}}};
  p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().message().find("--quantize-rest") == std::string::npos);
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernel"}}, {QuantDtype::kFloat16, {"*"}}};
  o.quantize.fallthrough = QuantDtype::kUint16;
  p = MakePlan(*b, o);
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().message().find("--quantize-rest") == std::string::npos);
}

TEST_CASE("an empty bundle is refused") {
  test::TempDir d;
  test::WriteFile(d / "b/readme.txt", "nothing");
  auto b = Bundle::Open(d / "b");
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message().find("no weights") != std::string::npos);
}

}  // namespace
}  // namespace wd
