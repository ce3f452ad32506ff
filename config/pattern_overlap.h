// What the weight names of two fnmatch patterns have in common, decided
// exactly on small automata: does every name one pattern matches also match
// others, and which name do two patterns share? Patterns are read as
// core/plan.cpp matches them (fnmatch without flags: `*` also matches `/`).
// config/ uses it to refuse a quantize pattern that could only ever conflict
// (docs/configuration.md, "Strictness"). No YAML here.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>

namespace wd {

// How the names `pattern` matches relate to the names `others` match. Names
// are what a weight can be called: UTF-8 without NUL.
struct PatternRelation {
  // False when the answer is not known: a bracket form not modelled ([=a=],
  // [.a.], an unterminated '['), a multibyte locale, or the work limit was
  // reached. The fields below mean nothing then.
  bool decided = false;
  bool matches_some = false;  // `pattern` matches at least one name
  bool covered = false;       // every name `pattern` matches, one of `others` matches
  // The shortest name `pattern` and one of `others` both match, if any.
  std::optional<std::string> shared;
};

// Answers within a bounded amount of work, so no config makes loading slow:
// once the budget is spent, every answer is undecided.
class PatternOracle {
 public:
  // The default is some tenths of a second at most; common patterns take a
  // few thousand steps.
  explicit PatternOracle(size_t budget = 2'000'000) : budget_(budget) {}

  PatternRelation Relate(const std::string& pattern, std::span<const std::string> others);

 private:
  size_t budget_;  // automaton steps left, each weighed by the words of positions it moves
};

}  // namespace wd
