// Pattern relations (config/pattern_overlap.h): tables of patterns -> what
// their names have in common, and the automata checked against fnmatch
// itself on every short pattern and name over a small alphabet.
#include "config/pattern_overlap.h"

#include <doctest/doctest.h>
#include <fnmatch.h>

#include <random>
#include <vector>

namespace wd {
namespace {

bool Fnmatch(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

// A pattern matching exactly `name`.
std::string Literal(const std::string& name) {
  std::string out;
  for (char c : name) out += std::string("\\") + c;
  return out;
}

struct Row {
  const char* pattern;
  std::vector<std::string> others;
  bool covered;
  const char* shared;  // nullptr: none
};

TEST_CASE("a pattern is covered when others match every name it matches") {
  const Row rows[] = {
      {"*/kernel", {"*"}, true, "/kernel"},
      {"*/kernel", {"**"}, true, "/kernel"},
      {"enc/*", {"enc*"}, true, "enc/"},
      {"enc*", {"enc/*"}, false, "enc/"},
      {"dense*", {"*/kernel"}, false, "dense/kernel"},
      {"*/kernel", {"dense*"}, false, "dense/kernel"},
      {"a?c", {"a*"}, true, "aac"},
      {"a*", {"a?c"}, false, "aac"},
      {"a[bc]", {"ab", "ac"}, true, "ab"},
      {"a[bc]", {"ab"}, false, "ab"},
      {"a[!b]", {"ab"}, false, nullptr},
      {"a[^b]", {"a[a-z]"}, false, "aa"},
      {"a[a-c]", {"a[!d-z]"}, true, "aa"},
      {"[[:digit:]]x", {"[0-9]?"}, true, "0x"},
      {"[]a]", {"]"}, false, "]"},
      {"[]a]", {"]", "a"}, true, "a"},
      {"[!]]", {"?"}, true, "a"},
      {"a\\*", {"a\\*"}, true, "a*"},
      {"a\\*", {"a?"}, true, "a*"},
      {"a\\*", {"ab"}, false, nullptr},
      {"x", {"y"}, false, nullptr},
      {"x", {}, false, nullptr},
      // A name is UTF-8: '?' is one byte, so 'é' (two) is '??'.
      {"é", {"??"}, true, "é"},
      {"é", {"?"}, false, nullptr},
      {"*é*", {"*"}, true, "é"},
      // Matches no name at all: a trailing '\' (glibc), or one byte of 'é'.
      {"a\\", {"b"}, true, nullptr},
      {"[é]", {"b"}, true, nullptr},
  };
  for (const Row& row : rows) {
    const std::string pattern = row.pattern;
    const std::string others = row.others.empty() ? "" : row.others[0];
    CAPTURE(pattern);
    CAPTURE(others);
    PatternOracle oracle;
    const PatternRelation r = oracle.Relate(row.pattern, row.others);
    REQUIRE(r.decided);
    CHECK(r.covered == row.covered);
    CHECK(r.shared.has_value() == (row.shared != nullptr));
    if (row.shared != nullptr && r.shared) CHECK(*r.shared == row.shared);
  }
}

TEST_CASE("a pattern that matches no name is told apart") {
  PatternOracle oracle;
  CHECK(oracle.Relate("a", {}).matches_some);
  CHECK_FALSE(oracle.Relate("a\\", {}).matches_some);
  CHECK_FALSE(oracle.Relate("[é]", {}).matches_some);
  CHECK(oracle.Relate("*[é]*", {}).matches_some);
}

TEST_CASE("forms not modelled and too much work leave the answer undecided") {
  const char* rows[] = {"[[=a=]]", "[[.a.]]", "[[:nope:]]", "[abc", "a[", "[a-", "[]"};
  const std::string star[] = {"*"};
  for (const char* pattern : rows) {
    CAPTURE(pattern);
    PatternOracle oracle;
    CHECK_FALSE(oracle.Relate(pattern, star).decided);
    CHECK_FALSE(oracle.Relate("*", std::vector<std::string>{pattern}).decided);
  }
  PatternOracle broke(0);
  CHECK_FALSE(broke.Relate("a", star).decided);
  // The automaton of "*a" and 20 '?' needs 2^20 states: given up, quickly.
  PatternOracle oracle;
  const std::string blowup = "*a" + std::string(20, '?');
  CHECK_FALSE(oracle.Relate(blowup, std::vector<std::string>{"*b*"}).decided);
}

// Every pattern over `alphabet` up to `length` characters.
std::vector<std::string> AllStrings(const std::string& alphabet, size_t length) {
  std::vector<std::string> out = {""};
  for (size_t begin = 0, n = 0; n < length; ++n) {
    const size_t end = out.size();
    for (size_t i = begin; i < end; ++i) {
      for (char c : alphabet) out.push_back(out[i] + c);
    }
    begin = end;
  }
  return out;
}

TEST_CASE("the automata match what fnmatch matches") {
  // Random patterns of up to 5 of these characters against names of up to 5
  // of the name characters: membership read as "covered by" and "shared".
  std::mt19937 rng(11);
  const std::string pattern_chars = "a/*?[]!^-:\\";
  const std::string name_chars = "a/]-\\!:";
  auto random_string = [&](const std::string& chars) {
    std::string s;
    const size_t n = rng() % 6;
    for (size_t i = 0; i < n; ++i) s += chars[rng() % chars.size()];
    return s;
  };
  PatternOracle oracle(size_t{1} << 40);
  int decided = 0, matched = 0;
  for (int round = 0; round < 20000; ++round) {
    const std::string pattern = random_string(pattern_chars);
    // Half the names are written after the pattern, so that many match.
    std::string name = random_string(name_chars);
    if (round % 2 == 0) {
      name.clear();
      for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '*' || c == '?') {
          for (size_t n = c == '?' ? 1 : rng() % 3; n > 0; --n) {
            name += name_chars[rng() % name_chars.size()];
          }
        } else if (c == '\\' && i + 1 < pattern.size()) {
          name += pattern[++i];
        } else {
          name += c;
        }
      }
    }
    const std::string just_pattern[] = {pattern};
    const PatternRelation r = oracle.Relate(Literal(name), just_pattern);
    if (!r.decided) continue;
    ++decided;
    CAPTURE(pattern);
    CAPTURE(name);
    const bool match = Fnmatch(pattern, name);
    matched += match ? 1 : 0;
    REQUIRE(r.covered == match);
    REQUIRE(r.shared.has_value() == match);
  }
  CHECK(decided > 15000);
  CHECK(matched > 3000);
}

TEST_CASE("covered and shared answers hold on random pattern pairs") {
  std::mt19937 rng(7);
  const std::string chars = "ab/*?[]!-";
  auto random_pattern = [&] {
    std::string p;
    const size_t n = 1 + rng() % 6;
    for (size_t i = 0; i < n; ++i) p += chars[rng() % chars.size()];
    return p;
  };
  const std::vector<std::string> names = AllStrings("ab/-]", 5);
  PatternOracle oracle(size_t{1} << 40);
  for (int round = 0; round < 3000; ++round) {
    const std::string p = random_pattern();
    const std::string q = random_pattern();
    const std::string just_q[] = {q};
    const PatternRelation r = oracle.Relate(p, just_q);
    if (!r.decided) continue;
    CAPTURE(p);
    CAPTURE(q);
    if (r.shared) {
      REQUIRE(Fnmatch(p, *r.shared));
      REQUIRE(Fnmatch(q, *r.shared));
    }
    for (const std::string& name : names) {
      const bool in_p = Fnmatch(p, name);
      const bool in_q = Fnmatch(q, name);
      if (r.covered && in_p) REQUIRE(in_q);
      if (!r.shared) REQUIRE_FALSE((in_p && in_q));
      if (in_p) REQUIRE(r.matches_some);
    }
  }
}

}  // namespace
}  // namespace wd
