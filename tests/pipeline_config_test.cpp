// Pipeline settings from YAML (config/pipeline_config.h) and the option
// helpers in core/pipeline_options.h: tables of input -> options or error.
#include "config/pipeline_config.h"

#include <doctest/doctest.h>

#include <span>
#include <sstream>

#include "core/pipeline_options.h"
#include "tests/test_util.h"

namespace wd {
namespace {

std::string Dump(const PipelineOptions& o) { return test::DumpOptions(o); }

struct OkRow {
  const char* yaml;
  const char* dump;
};

struct ErrorRow {
  const char* yaml;
  const char* error;  // the whole message, location first
};

TEST_CASE("valid pipeline settings parse to the intended options") {
  const OkRow rows[] = {
      {"", "shard=4194304 single"},
      {"{}", "shard=4194304 single"},
      {"# only a comment\n", "shard=4194304 single"},
      {"shard_size: 4MiB", "shard=4194304 single"},
      {"shard_size: 1KB", "shard=1000 single"},
      {"shard_size: 16", "shard=16 single"},
      {"shard_size: \"16\"", "shard=16 single"},
      {"shard_size: 16B", "shard=16 single"},
      {"shard_size: 2 GiB", "shard=2147483648 single"},
      {"groups: single", "shard=4194304 single"},
      {"groups: {by_prefix: 2}", "shard=4194304 by_prefix=2"},
      {"groups:\n  by_prefix: 1\n", "shard=4194304 by_prefix=1"},
      {"groups:\n  - name: encoder\n    match: [\"encoder/*\"]\n  - match: [\"decoder/*\", "
       "\"head/*\"]\n",
       "shard=4194304 groups=[encoder|encoder/*][|decoder/*,head/*]"},
      {"groups:\n  - match: enc/*\n", "shard=4194304 groups=[|enc/*]"},
      {"groups: [{match: a}]\nunmatched: error\n", "shard=4194304 groups=[|a] unmatched=error"},
      {"unmatched: last\ngroups: [{match: a}]\n", "shard=4194304 groups=[|a]"},
      // Accepted with any grouping; it only has an effect on pattern groups.
      {"unmatched: error", "shard=4194304 single unmatched=error"},
      {"quantize: {}", "shard=4194304 single"},
      {"quantize:\n  uint8: [\"*/kernel\"]\n  float16: true\n",
       "shard=4194304 single uint8=*/kernel float16=true"},
      {"quantize:\n  float16: \"*/w\"\n  uint16: [a, b]\n",
       "shard=4194304 single float16=*/w uint16=a,b"},
      {"quantize:\n  uint8: True\n", "shard=4194304 single uint8=true"},
      // Quoted, `true` is a pattern (a weight named "true"), not the fallthrough.
      {"quantize:\n  float16: 'true'\n", "shard=4194304 single float16=true"},
      {"quantize:\n  float16: [\"true\"]\n", "shard=4194304 single float16=true"},
      {"shard_size: 4KiB\ngroups: single\nquantize: {uint16: [\"a/*\"]}\n",
       "shard=4096 single uint16=a/*"},
      {"strict_patterns: true", "shard=4194304 single strict_patterns"},
      {"strict_patterns: True\nquantize: {uint8: a}\n",
       "shard=4194304 single uint8=a strict_patterns"},
      {"strict_patterns: false", "shard=4194304 single"},
  };
  for (const OkRow& row : rows) {
    const std::string yaml_text = row.yaml;
    CAPTURE(yaml_text);
    Result<PipelineOptions> options = ParsePipelineConfig(row.yaml, "cfg.yaml");
    REQUIRE_MESSAGE(options.ok(), options.status().message());
    CHECK(Dump(*options) == row.dump);
  }
}

TEST_CASE("a quoted true is a pattern, a plain true is the fallthrough") {
  Result<PipelineOptions> quoted = ParsePipelineConfig("quantize: {float16: 'true'}", "c");
  Result<PipelineOptions> plain = ParsePipelineConfig("quantize: {float16: true}", "c");
  REQUIRE(quoted.ok());
  REQUIRE(plain.ok());
  CHECK(quoted->quantize.fallthrough == QuantDtype::kNone);
  CHECK(quoted->quantize.patterns.size() == 1);
  CHECK(plain->quantize.fallthrough == QuantDtype::kFloat16);
  CHECK(plain->quantize.patterns.empty());
}

TEST_CASE("bad pipeline settings are errors at file:line:col") {
  const ErrorRow rows[] = {
      {"shard_size: 0", "cfg.yaml:1:13: shard_size: invalid size '0': must be at least 1 byte"},
      {"shard_size: -1", "cfg.yaml:1:13: shard_size: invalid size '-1': must be positive"},
      {"shard_size: 1.5MiB",
       "cfg.yaml:1:13: shard_size: invalid size '1.5MiB': fractions are not allowed; use a whole "
       "number of a smaller unit (e.g. 1536KiB)"},
      {"shard_size: 99999999999GiB",
       "cfg.yaml:1:13: shard_size: invalid size '99999999999GiB': too large (does not fit in 64 "
       "bits)"},
      {"shard_size: 4mib",
       "cfg.yaml:1:13: shard_size: invalid size '4mib': unknown unit 'mib' (expected B, KB, MB, "
       "GB, KiB, MiB or GiB)"},
      {"shard_size: [1]",
       "cfg.yaml:1:13: shard_size: expected a size such as 4MiB or 4194304, got a list"},
      {"shard_size:\n", "cfg.yaml:1:1: shard_size: no value"},
      {"shard_sise: 4MiB",
       "cfg.yaml:1:1: unknown key 'shard_sise' in pipeline settings; did you mean 'shard_size'?"},
      {"shard_size: 1\nshard_size: 2\n",
       "cfg.yaml:2:1: pipeline settings: duplicate key 'shard_size'"},
      {"strict_patterns: yes", "cfg.yaml:1:18: strict_patterns: expected true or false, got 'yes'"},
      {"strict_patterns: 'true'",
       "cfg.yaml:1:18: strict_patterns: expected true or false, got 'true'"},
      {"strict_patterns: [true]",
       "cfg.yaml:1:18: strict_patterns: expected true or false, got a list"},
      {"strict_patterns:\n", "cfg.yaml:1:1: strict_patterns: no value"},
      {"- a\n- b\n", "cfg.yaml:1:1: pipeline settings: expected a mapping, got a list"},
      {"? [a]\n: 1\n", "cfg.yaml:1:3: pipeline settings: keys must be plain strings, got a list"},
      {"groups: all",
       "cfg.yaml:1:9: groups: expected single, a list of groups or {by_prefix: N}, got 'all'"},
      {"groups: []", "cfg.yaml:1:9: groups: empty list of groups (use `groups: single`)"},
      {"groups:\n  - name: a\n", "cfg.yaml:2:5: groups: group 1: no 'match' key"},
      {"groups:\n  - match: a\n  - {}\n", "cfg.yaml:3:5: groups: group 2: no 'match' key"},
      {"groups:\n  - match: []\n", "cfg.yaml:2:12: groups: match: empty pattern list"},
      {"groups:\n  - match: ['a', '']\n",
       "cfg.yaml:2:18: groups: match: expected a non-empty pattern, got ''"},
      {"groups:\n  - match: a\n    mtach: b\n",
       "cfg.yaml:3:5: unknown key 'mtach' in a group; did you mean 'match'?"},
      {"groups:\n  - name: [x]\n    match: a\n",
       "cfg.yaml:2:11: groups: name: expected a string, got a list"},
      {"groups:\n  - enc/*\n",
       "cfg.yaml:2:5: groups: group 1: expected a mapping {name, match}, got 'enc/*'"},
      {"groups: {by_prefix: 0}",
       "cfg.yaml:1:21: groups: by_prefix: expected a whole number >= 1, got '0'"},
      {"groups: {by_prefix: two}",
       "cfg.yaml:1:21: groups: by_prefix: expected a whole number >= 1, got 'two'"},
      {"groups: {}", "cfg.yaml:1:9: groups: a mapping must be {by_prefix: N}"},
      {"groups: {by_layer: 1}",
       "cfg.yaml:1:10: unknown key 'by_layer' in groups (expected by_prefix)"},
      {"unmatched: drop", "cfg.yaml:1:12: unmatched: expected last or error, got 'drop'"},
      {"quantize:\n  int8: ['*']\n",
       "cfg.yaml:2:3: unknown key 'int8' in quantize; did you mean 'uint8'?"},
      {"quantize:\n  uint8: true\n  float16: true\n",
       "cfg.yaml:3:12: quantize: float16: only one dtype may be true (the fallthrough), and uint8 "
       "already is"},
      {"quantize:\n  float16: false\n",
       "cfg.yaml:2:12: quantize: float16: false is not allowed; write true or patterns, or omit "
       "it"},
      {"quantize:\n  uint8: []\n", "cfg.yaml:2:10: quantize: uint8: empty pattern list"},
      {"quantize:\n  uint8: ''\n", "cfg.yaml:2:10: quantize: uint8: empty pattern"},
      {"quantize:\n  uint8: [[a]]\n",
       "cfg.yaml:2:11: quantize: uint8: expected a non-empty pattern, got a list"},
      {"quantize:\n  uint8: {a: 1}\n",
       "cfg.yaml:2:10: quantize: uint8: expected a pattern or a list of patterns, got a mapping"},
      {"quantize:\n  uint8: ['a']\n  uint8: ['b']\n",
       "cfg.yaml:3:3: quantize: duplicate key 'uint8'"},
      {"quantize: float16",
       "cfg.yaml:1:11: quantize: expected a mapping {uint8|uint16|float16: patterns | true}, got "
       "'float16'"},
      {"quantize:\n", "cfg.yaml:1:1: quantize: no value"},
      // YAML syntax errors keep yaml-cpp's words, at our 1-based position.
      {"groups: [single\n", "cfg.yaml:2:1: end of sequence flow not found"},
      {"shard_size: 1\n bad: 2\n", "cfg.yaml:2:5: illegal map value"},
      {"shard_size: 1\n---\nshard_size: 2\n",
       "cfg.yaml:2:1: expected one YAML document, found another here"},
      // yaml-cpp 0.7's LoadAll loops for ever on these (upstream #1040):
      // each must end, with an error, at once.
      {",",
       "cfg.yaml:1:1: not valid YAML here (a stray ',', or a flow indicator such as ',' '[' ']' "
       "'{' '}' outside a flow collection: quote the value)"},
      {"&a ,",
       "cfg.yaml:1:4: not valid YAML here (a stray ',', or a flow indicator such as ',' '[' ']' "
       "'{' '}' outside a flow collection: quote the value)"},
      {"!t ,",
       "cfg.yaml:1:4: not valid YAML here (a stray ',', or a flow indicator such as ',' '[' ']' "
       "'{' '}' outside a flow collection: quote the value)"},
      {"shard_size: 1\n,\n", "cfg.yaml:2:1: end of map not found"},
      {"]", "cfg.yaml:1:1: illegal flow end"},
      {"}", "cfg.yaml:1:1: illegal flow end"},
      {"[", "cfg.yaml:1:1: end of sequence flow not found"},
      {"{,", "cfg.yaml:1:1: end of map flow not found"},
      {"[,", "cfg.yaml:1:1: end of sequence flow not found"},
      {"- ]", "cfg.yaml:1:3: illegal flow end"},
      {"[:", "cfg.yaml:1:2: unknown token"},
      {"-,", "cfg.yaml:1:1: pipeline settings: expected a mapping, got '-,'"},
      // An alias of an enclosing node: a cycle, which nothing may walk for ever.
      {"&a [*a]", "cfg.yaml:1:1: pipeline settings: expected a mapping, got a list"},
      {"quantize: &q {uint8: *q}",
       "cfg.yaml:1:11: quantize: uint8: expected a pattern or a list of patterns, got a mapping"},
      // Not UTF-8: raw bytes in the text, or a escape that yields a bad scalar.
      {"quantize:\n  float16: [\"\xc3*\"]\n",
       "cfg.yaml:2:14: not valid UTF-8 (YAML text is UTF-8)"},
      {"quantize:\n  float16: [\"\\N*\"]\n",
       "cfg.yaml:2:13: not valid UTF-8 (an escape in a quoted string, such as \\N, gave a stray "
       "byte: write the character itself)"},
      {"quantize:\n  float16: [\"\\udfff*\"]\n", "cfg.yaml:2:20: invalid unicode: 57343"},
      {"quantize:\n  float16: [\"a\\0*\"]\n",
       "cfg.yaml:2:3: quantize: float16: a pattern holds a NUL character"},
  };
  const std::string deep = "groups: " + std::string(1000, '[');
  Result<PipelineOptions> too_deep = ParsePipelineConfig(deep, "cfg.yaml");
  REQUIRE_FALSE(too_deep.ok());
  CHECK(too_deep.status().message() == "cfg.yaml:1:1: YAML nested too deeply");
  for (const ErrorRow& row : rows) {
    const std::string yaml_text = row.yaml;
    CAPTURE(yaml_text);
    Result<PipelineOptions> options = ParsePipelineConfig(row.yaml, "cfg.yaml");
    REQUIRE_FALSE(options.ok());
    CHECK(options.status().kind() == ErrorKind::kConfig);
    CHECK(options.status().message() == row.error);
  }
}

// Rows of YAML -> the whole error message.
void CheckErrors(std::span<const ErrorRow> rows) {
  for (const ErrorRow& row : rows) {
    const std::string yaml_text = row.yaml;
    CAPTURE(yaml_text);
    Result<PipelineOptions> options = ParsePipelineConfig(row.yaml, "cfg.yaml");
    REQUIRE_FALSE(options.ok());
    CHECK(options.status().kind() == ErrorKind::kConfig);
    CHECK(options.status().message() == row.error);
  }
}

TEST_CASE("an unknown key close to a known one is suggested") {
  const ErrorRow rows[] = {
      // One edit, two edits, a swap, and case.
      {"shard_sze: 1",
       "cfg.yaml:1:1: unknown key 'shard_sze' in pipeline settings; did you mean 'shard_size'?"},
      {"shardsize: 1",
       "cfg.yaml:1:1: unknown key 'shardsize' in pipeline settings; did you mean 'shard_size'?"},
      {"shard-sise: 1",
       "cfg.yaml:1:1: unknown key 'shard-sise' in pipeline settings; did you mean 'shard_size'?"},
      {"gruops: single",
       "cfg.yaml:1:1: unknown key 'gruops' in pipeline settings; did you mean 'groups'?"},
      {"Quantize: {}",
       "cfg.yaml:1:1: unknown key 'Quantize' in pipeline settings; did you mean 'quantize'?"},
      {"UNMATCHED: last",
       "cfg.yaml:1:1: unknown key 'UNMATCHED' in pipeline settings; did you mean 'unmatched'?"},
      // Three edits is not a typo.
      {"groups: {by_prefixes_: 1}",
       "cfg.yaml:1:10: unknown key 'by_prefixes_' in groups (expected by_prefix)"},
      // Short keys take one edit at most.
      {"quantize: {fp16: a}",
       "cfg.yaml:1:12: unknown key 'fp16' in quantize (expected uint8, uint16 or float16)"},
      {"quantize: {unit8: a}",
       "cfg.yaml:1:12: unknown key 'unit8' in quantize; did you mean 'uint8'?"},
      {"quantize: {float61: a}",
       "cfg.yaml:1:12: unknown key 'float61' in quantize; did you mean 'float16'?"},
      {"quantize: {uint61: a}",
       "cfg.yaml:1:12: unknown key 'uint61' in quantize; did you mean 'uint16'?"},
      {"groups: [{nmae: a, match: b}]",
       "cfg.yaml:1:11: unknown key 'nmae' in a group; did you mean 'name'?"},
      {"groups: [{nm: a, match: b}]",
       "cfg.yaml:1:11: unknown key 'nm' in a group (expected name or match)"},
      {"groups: [{matches: a}]",
       "cfg.yaml:1:11: unknown key 'matches' in a group; did you mean 'match'?"},
      {"groups: {by_prefx: 1}",
       "cfg.yaml:1:10: unknown key 'by_prefx' in groups; did you mean 'by_prefix'?"},
  };
  CheckErrors(rows);
}

TEST_CASE("a pattern that starts with an unquoted * is told to be quoted") {
  const ErrorRow rows[] = {
      {"quantize: {uint8: [*/kernel]}",
       "cfg.yaml:1:20: patterns that start with * must be quoted: write \"*/kernel\""},
      {"quantize:\n  uint8: */kernel\n",
       "cfg.yaml:2:10: patterns that start with * must be quoted: write \"*/kernel\""},
      {"quantize:\n  uint8:\n    - dense/*\n    - */kernel\n",
       "cfg.yaml:4:7: patterns that start with * must be quoted: write \"*/kernel\""},
      {"quantize: {uint8: [\"a\", */kernel, b]}",
       "cfg.yaml:1:25: patterns that start with * must be quoted: write \"*/kernel\""},
      {"quantize: {uint8: *kernel*}",
       "cfg.yaml:1:19: patterns that start with * must be quoted: write \"*kernel*\""},
      {"quantize: {float16: *.bias}",
       "cfg.yaml:1:21: patterns that start with * must be quoted: write \"*.bias\""},
      {"quantize: {uint8: [*[ab]]}",
       "cfg.yaml:1:20: patterns that start with * must be quoted: write \"*[ab]\""},
      {"quantize: {uint8: *}",
       "cfg.yaml:1:19: patterns that start with * must be quoted: write \"*\""},
      {"quantize:\n  uint8: *\n",
       "cfg.yaml:2:10: patterns that start with * must be quoted: write \"*\""},
      {"quantize: {uint8: [a, *]}",
       "cfg.yaml:1:23: patterns that start with * must be quoted: write \"*\""},
      {"groups:\n  - match: *foo\n",
       "cfg.yaml:2:12: patterns that start with * must be quoted: write \"*foo\""},
      {"groups: [{match: *}]",
       "cfg.yaml:1:18: patterns that start with * must be quoted: write \"*\""},
      {"groups:\n  - match: [\"enc/*\", *b]\n",
       "cfg.yaml:2:22: patterns that start with * must be quoted: write \"*b\""},
      {"groups:\n  - match:\n      - *\\\\x\n",
       "cfg.yaml:3:9: patterns that start with * must be quoted: write '*\\\\x'"},
      // Column counts bytes, as yaml-cpp's do: 'é' is two.
      {"# é\nquantize: {uint8: ['é', *é]}\n",
       "cfg.yaml:2:26: patterns that start with * must be quoted: write \"*é\""},
  };
  CheckErrors(rows);
}

TEST_CASE("a quantize pattern another dtype's pattern covers is an error at load") {
  const ErrorRow rows[] = {
      {"quantize: {uint8: [\"*/kernel\"], float16: \"*\"}",
       "cfg.yaml:1:20: quantize: uint8 pattern '*/kernel' can never apply: float16 pattern '*' "
       "also matches every name it matches, and a weight matched by two dtypes is refused; to "
       "quantize every other float weight as float16, write `float16: true` (the fallthrough; "
       "--quantize-rest float16 on the command line) instead of '*'"},
      {"quantize:\n  float16: '**'\n  uint8: ['a', '*/kernel']\n",
       "cfg.yaml:3:11: quantize: uint8 pattern 'a' can never apply: float16 pattern '**' also "
       "matches every name it matches, and a weight matched by two dtypes is refused; to "
       "quantize every other float weight as float16, write `float16: true` (the fallthrough; "
       "--quantize-rest float16 on the command line) instead of '**'"},
      {"quantize: {uint8: \"enc/*\", uint16: \"enc*\"}",
       "cfg.yaml:1:19: quantize: uint8 pattern 'enc/*' can never apply: uint16 pattern 'enc*' "
       "also matches every name it matches, and a weight matched by two dtypes is refused"},
      {"quantize: {uint8: \"enc*\", uint16: \"enc/*\"}",
       "cfg.yaml:1:35: quantize: uint16 pattern 'enc/*' can never apply: uint8 pattern 'enc*' "
       "also matches every name it matches, and a weight matched by two dtypes is refused"},
      {"quantize: {uint8: \"*/kernel\", float16: \"*/kernel\"}",
       "cfg.yaml:1:19: quantize: uint8 pattern '*/kernel' can never apply: float16 pattern "
       "'*/kernel' also matches every name it matches, and a weight matched by two dtypes is "
       "refused"},
      {"quantize: {uint8: \"layer[0-9]/w\", float16: \"layer?/*\"}",
       "cfg.yaml:1:19: quantize: uint8 pattern 'layer[0-9]/w' can never apply: float16 pattern "
       "'layer?/*' also matches every name it matches, and a weight matched by two dtypes is "
       "refused"},
      {"quantize: {uint8: \"a\\\\*\", float16: \"a?\"}",
       "cfg.yaml:1:19: quantize: uint8 pattern 'a\\*' can never apply: float16 pattern 'a?' "
       "also matches every name it matches, and a weight matched by two dtypes is refused"},
      // uint16 is the fallthrough already: float16: true is no fix.
      {"quantize: {uint16: true, uint8: '*/kernel', float16: '*'}",
       "cfg.yaml:1:33: quantize: uint8 pattern '*/kernel' can never apply: float16 pattern '*' "
       "also matches every name it matches, and a weight matched by two dtypes is refused"},
  };
  CheckErrors(rows);
}

struct WarningRow {
  const char* yaml;
  std::vector<std::string> warnings;
};

TEST_CASE("patterns that only may conflict, or cannot apply, are warnings") {
  const WarningRow rows[] = {
      // Fine: disjoint, the same dtype, a fallthrough, undecidable forms.
      {"quantize: {uint8: [\"*/kernel\"], float16: true}", {}},
      {"quantize: {uint8: [\"*/kernel\", \"*\"]}", {}},
      {"quantize: {uint8: \"enc/*\", float16: \"dec/*\"}", {}},
      {"quantize: {uint8: \"*/kernel\", float16: \"*/bias\"}", {}},
      {"quantize: {uint8: \"[[=a=]]\", float16: \"*\"}", {}},
      {"quantize: {uint8: \"a[!b]\", float16: \"ab\"}", {}},
      {"groups: [{match: \"enc/*\"}, {match: \"dec/*\"}]", {}},
      {"groups: [{match: \"enc/a\"}, {match: \"enc/*\"}]", {}},
      // Overlaps, with a name both match.
      {"quantize: {uint8: [\"*/kernel\"], float16: \"dense*\"}",
       {"cfg.yaml:1:42: quantize: uint8 '*/kernel' and float16 'dense*' both match names such "
        "as 'dense/kernel'; a weight named so would be refused"}},
      {"quantize:\n  uint8: \"enc*\"\n  float16: \"*/w\"\n  uint16: \"*b*\"\n",
       {"cfg.yaml:3:12: quantize: uint8 'enc*' and float16 '*/w' both match names such as "
        "'enc/w'; a weight named so would be refused",
        "cfg.yaml:4:11: quantize: uint8 'enc*' and uint16 '*b*' both match names such as "
        "'encb'; a weight named so would be refused",
        "cfg.yaml:4:11: quantize: float16 '*/w' and uint16 '*b*' both match names such as "
        "'b/w'; a weight named so would be refused"}},
      // Matches no name: one byte of a two-byte character in [...].
      {"quantize: {uint8: \"[é]\"}",
       {"cfg.yaml:1:19: quantize: uint8 pattern '[é]' matches no weight name (inside [...] each "
        "byte of a non-ASCII character is a member of its own)"}},
      // Groups that can never receive a weight.
      {"groups:\n  - match: \"*\"\n  - name: dec\n    match: dec/*\n",
       {"cfg.yaml:3:5: groups: group 2 ('dec') can never receive a weight: every name its "
        "patterns match, an earlier group's patterns match first (a weight joins the first "
        "group it matches)"}},
      {"groups:\n  - match: [enc/*, dec/*]\n  - match: [dec/a*, enc/b]\n  - match: x\n",
       {"cfg.yaml:3:5: groups: group 2 can never receive a weight: every name its patterns "
        "match, an earlier group's patterns match first (a weight joins the first group it "
        "matches)"}},
      {"groups:\n  - match: 'a\\'\n",
       {"cfg.yaml:2:5: groups: group 1 can never receive a weight: its patterns match no name"}},
  };
  for (const WarningRow& row : rows) {
    const std::string yaml_text = row.yaml;
    CAPTURE(yaml_text);
    std::vector<std::string> warnings = {"stale"};
    Result<PipelineOptions> options = ParsePipelineConfig(row.yaml, "cfg.yaml", &warnings);
    REQUIRE_MESSAGE(options.ok(), options.status().message());
    CHECK(warnings == row.warnings);
  }
}

TEST_CASE("every golden config parses to the options its case was made with") {
  const std::pair<const char*, const char*> rows[] = {
      {"01-one-float32", "shard=16 single"},
      {"02-strings", "shard=5 single"},
      {"03-mixed-packed-sharded", "shard=8 single"},
      {"04-auto-conversions", "shard=4194304 single"},
      {"05-uint8", "shard=4194304 single uint8=true"},
      {"06-uint16-float16", "shard=64 single uint16=a float16=b"},
      {"07-groups-fallthrough", "shard=12 groups=[|enc/*][|dec/*] uint8=*/w float16=true"},
      {"08-complex", "shard=4194304 single"},
      {"09-fortran-3d-compressed", "shard=4194304 single"},
      {"10-tfjs-uniform-shard-hazard", "shard=4194304 groups=[|small/*]"},
  };
  for (const auto& [dir, dump] : rows) {
    const std::string case_dir = dir;
    CAPTURE(case_dir);
    Result<PipelineOptions> options =
        LoadPipelineConfig(test::SourcePath(std::string("golden/") + dir + "/config.yaml"));
    REQUIRE_MESSAGE(options.ok(), options.status().message());
    CHECK(Dump(*options) == dump);
  }
}

TEST_CASE("an overlay replaces only the keys it names") {
  Result<PipelineOptions> base = ParsePipelineConfig(
      "shard_size: 8\ngroups: [{match: a}]\nunmatched: error\nquantize: {uint8: true}\n", "d");
  REQUIRE(base.ok());
  const std::pair<const char*, const char*> rows[] = {
      {"", "shard=8 groups=[|a] unmatched=error uint8=true"},
      {"shard_size: 16", "shard=16 groups=[|a] unmatched=error uint8=true"},
      {"quantize: {}", "shard=8 groups=[|a] unmatched=error"},
      {"quantize: {float16: b}", "shard=8 groups=[|a] unmatched=error float16=b"},
      {"groups: [{match: c}]", "shard=8 groups=[|c] unmatched=error uint8=true"},
      {"unmatched: last", "shard=8 groups=[|a] uint8=true"},
      {"groups: {by_prefix: 3}", "shard=8 by_prefix=3 unmatched=error uint8=true"},
  };
  for (const auto& [yaml, dump] : rows) {
    const std::string yaml_text = yaml;
    CAPTURE(yaml_text);
    Result<PipelineOptions> options = ParsePipelineConfigOver(yaml, "w", *base);
    REQUIRE_MESSAGE(options.ok(), options.status().message());
    CHECK(Dump(*options) == dump);
  }
  Result<PipelineOptions> bad = ParsePipelineConfigOver("\nshard_size: 0", "w.yaml", *base);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() ==
        "w.yaml:2:13: shard_size: invalid size '0': must be at least 1 byte");
}

TEST_CASE("an unreadable config file is a config error naming the path") {
  test::TempDir dir;
  Result<PipelineOptions> missing = LoadPipelineConfig(dir / "nope.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().kind() == ErrorKind::kConfig);
  CHECK(missing.status().message() ==
        "cannot read config " + (dir / "nope.yaml") + ": No such file or directory");

  Result<PipelineOptions> directory = LoadPipelineConfig(dir.path());
  REQUIRE_FALSE(directory.ok());
  CHECK(directory.status().message() ==
        "cannot read config " + dir.path() + ": not a regular file");

  test::WriteFile(dir / "bad.yaml", "shard_size: 4MiB\nquantize: {int4: x}\n");
  Result<PipelineOptions> bad = LoadPipelineConfig(dir / "bad.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() ==
        dir / "bad.yaml:2:12: unknown key 'int4' in quantize (expected uint8, uint16 or float16)");
}

TEST_CASE("byte sizes accept whole numbers with binary or decimal units") {
  const std::pair<const char*, uint64_t> ok[] = {
      {"16", 16},
      {"16B", 16},
      {"1KB", 1000},
      {"3MB", 3000000},
      {"2GB", 2000000000},
      {"1KiB", 1024},
      {"4MiB", 4194304},
      {"1GiB", 1073741824},
      {"4 MiB", 4194304},
      {"0016", 16},
      {"18446744073709551615", 18446744073709551615ULL},
      {"17179869183GiB", 17179869183ULL << 30},
  };
  for (const auto& [text, bytes] : ok) {
    const std::string size_text = text;
    CAPTURE(size_text);
    Result<uint64_t> n = ParseByteSize(text);
    REQUIRE_MESSAGE(n.ok(), n.status().message());
    CHECK(*n == bytes);
  }
  const std::pair<const char*, const char*> bad[] = {
      {"0", "must be at least 1 byte"},
      {"0MiB", "must be at least 1 byte"},
      {"-1", "must be positive"},
      {"1.5MiB", "fractions are not allowed"},
      {"1,5", "fractions are not allowed"},
      {"99999999999GiB", "too large"},
      {"18446744073709551616", "too large"},
      {"17179869184GiB", "too large"},
      {"", "empty"},
      {"MiB", "expected a whole number of bytes"},
      {"+4", "expected a whole number of bytes"},
      {"0x10", "unknown unit 'x10'"},
      {"4mib", "unknown unit 'mib'"},
      {"4M", "unknown unit 'M'"},
      {"4 ", "unknown unit ' '"},
      {"4  MiB", "unknown unit ' MiB'"},
  };
  for (const auto& [text, why] : bad) {
    const std::string size_text = text;
    CAPTURE(size_text);
    Result<uint64_t> n = ParseByteSize(text);
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().kind() == ErrorKind::kConfig);
    CHECK(n.status().message().find("invalid size '" + std::string(text) + "': ") == 0);
    CHECK(n.status().message().find(why) != std::string::npos);
  }
}

TEST_CASE("quantization dtype names round-trip and unknown names are refused") {
  for (QuantDtype d : {QuantDtype::kUint8, QuantDtype::kUint16, QuantDtype::kFloat16}) {
    Result<QuantDtype> back = QuantDtypeFromName(QuantDtypeName(d));
    REQUIRE(back.ok());
    CHECK(*back == d);
  }
  CHECK(std::string(QuantDtypeName(QuantDtype::kNone)) == "none");
  for (const char* name : {"none", "int8", "UINT8", "float32", ""}) {
    Result<QuantDtype> d = QuantDtypeFromName(name);
    REQUIRE_FALSE(d.ok());
    CHECK(d.status().message() == "unknown quantization dtype '" + std::string(name) +
                                      "' (expected uint8, uint16 or float16)");
  }
}

TEST_CASE("quantize maps and options built by hand are validated") {
  QuantizeMap fine;
  fine.patterns = {{QuantDtype::kUint8, {"a"}}, {QuantDtype::kUint8, {"a", "b"}}};
  fine.fallthrough = QuantDtype::kFloat16;
  CHECK(ValidateQuantizeMap(fine).ok());

  QuantizeMap no_dtype;
  no_dtype.patterns = {{QuantDtype::kNone, {"a"}}};
  CHECK(ValidateQuantizeMap(no_dtype).message() ==
        "quantize: an entry has no dtype (expected uint8, uint16 or float16)");
  QuantizeMap empty_list;
  empty_list.patterns = {{QuantDtype::kUint16, {}}};
  CHECK(ValidateQuantizeMap(empty_list).message() == "quantize: uint16: empty pattern list");
  QuantizeMap empty_pattern;
  empty_pattern.patterns = {{QuantDtype::kFloat16, {"x", ""}}};
  CHECK(ValidateQuantizeMap(empty_pattern).message() == "quantize: float16: empty pattern");
  QuantizeMap not_utf8;
  not_utf8.patterns = {{QuantDtype::kFloat16, {"\xc3*"}}};
  CHECK(ValidateQuantizeMap(not_utf8).message() ==
        "quantize: float16: pattern '\\xc3*' is not valid UTF-8");

  PipelineOptions options;
  CHECK(ValidatePipelineOptions(options).ok());
  options.shard_size = 0;
  CHECK(ValidatePipelineOptions(options).message() == "shard_size: must be at least 1 byte");
  options.shard_size = 1;
  options.grouping.kind = Grouping::Kind::kByPrefix;
  options.grouping.prefix_components = 0;
  CHECK(ValidatePipelineOptions(options).message() ==
        "groups: by_prefix must be at least 1, got 0");
  options.grouping.kind = Grouping::Kind::kPatterns;
  CHECK(ValidatePipelineOptions(options).message() == "groups: empty list of groups");
  options.grouping.rules = {{"enc", {"enc/*"}}, {"dec", {}}};
  CHECK(ValidatePipelineOptions(options).message() == "groups: group 2: no match patterns");
  options.grouping.rules[1].match = {""};
  CHECK(ValidatePipelineOptions(options).message() == "groups: group 2: empty pattern");
  options.grouping.rules[1].match = {"d\xff*"};
  CHECK(ValidatePipelineOptions(options).message() ==
        "groups: group 2: pattern 'd\\xff*' is not valid UTF-8");
  options.grouping.rules[1].match = {"dec/*"};
  options.quantize = empty_list;
  CHECK(ValidatePipelineOptions(options).message() == "quantize: uint16: empty pattern list");
}

std::string Canonical(const char* yaml) {
  Result<PipelineOptions> options = ParsePipelineConfig(yaml, "c");
  REQUIRE_MESSAGE(options.ok(), options.status().message());
  return CanonicalOptions(*options);
}

TEST_CASE("canonical text is fixed JSON of what the settings mean") {
  CHECK(Canonical("") ==
        "{\"shard_size\":4194304,\"groups\":{\"kind\":\"single\"},\"quantize\":{\"uint8\":[],"
        "\"uint16\":[],\"float16\":[],\"fallthrough\":\"none\"}}");
  CHECK(Canonical("shard_size: 12\ngroups: [{match: [\"enc/*\"]}, {match: \"dec/*\"}]\n"
                  "quantize: {uint8: [\"*/w\"], float16: true}\n") ==
        "{\"shard_size\":12,\"groups\":{\"kind\":\"patterns\",\"rules\":[[\"enc/*\"],"
        "[\"dec/*\"]],\"unmatched\":\"last\"},\"quantize\":{\"uint8\":[\"*/w\"],\"uint16\":[],"
        "\"float16\":[],\"fallthrough\":\"float16\"}}");
  CHECK(Canonical("groups: {by_prefix: 2}") ==
        "{\"shard_size\":4194304,\"groups\":{\"kind\":\"by_prefix\",\"components\":2},"
        "\"quantize\":{\"uint8\":[],\"uint16\":[],\"float16\":[],\"fallthrough\":\"none\"}}");
  CHECK(Canonical("quantize: {uint8: \"a\\\"b\\\\c\\nd\"}")
            .find("\"uint8\":[\"a\\\"b\\\\c\\u000ad\"]") != std::string::npos);
}

TEST_CASE("configs that mean the same thing have the same canonical text") {
  const std::pair<const char*, const char*> same[] = {
      {"", "shard_size: 4MiB\ngroups: single\nquantize: {}\n"},
      {"shard_size: 4MiB", "shard_size: 4194304"},
      {"shard_size: 1KB", "shard_size: 1000B"},
      {"unmatched: error", ""},
      {"groups: {by_prefix: 1}\nunmatched: error", "groups: {by_prefix: 1}"},
      {"groups: [{name: x, match: [a, b]}]", "groups: [{match: [b, a, b]}]"},
      {"groups: [{match: a}]", "groups: [{match: a}]\nunmatched: last"},
      {"quantize: {uint8: [a, b], float16: c}", "quantize: {float16: [c], uint8: [b, a, a]}"},
      {"shard_size: 8\nquantize: {uint8: true}", "quantize: {uint8: true}\nshard_size: 8"},
      // It changes no output byte.
      {"strict_patterns: true", ""},
  };
  for (const auto& [a, b] : same) {
    const std::string text_a = a;
    CAPTURE(text_a);
    const std::string text_b = b;
    CAPTURE(text_b);
    CHECK(Canonical(a) == Canonical(b));
  }
  const std::pair<const char*, const char*> different[] = {
      {"shard_size: 4MB", "shard_size: 4MiB"},
      {"groups: [{match: a}, {match: b}]", "groups: [{match: b}, {match: a}]"},
      {"groups: [{match: a}]", "groups: [{match: a}]\nunmatched: error"},
      {"groups: {by_prefix: 1}", "groups: {by_prefix: 2}"},
      {"groups: single", "groups: [{match: '*'}]"},
      {"quantize: {uint8: a}", "quantize: {uint16: a}"},
      {"quantize: {uint8: true}", "quantize: {float16: true}"},
      {"quantize: {uint8: a}", "quantize: {uint8: [a, b]}"},
  };
  for (const auto& [a, b] : different) {
    const std::string text_a = a;
    CAPTURE(text_a);
    const std::string text_b = b;
    CAPTURE(text_b);
    CHECK(Canonical(a) != Canonical(b));
  }
}

}  // namespace
}  // namespace wd
