#include "config/pattern_overlap.h"

#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <unordered_map>
#include <vector>

namespace wd {
namespace {

// A pattern is a sequence of elements: `*`, or one byte out of a set (a
// literal, `?`, a bracket expression). Its automaton has one position per
// element plus the final one; matching moves a set of positions along.
struct Element {
  bool star = false;
  std::bitset<256> bytes;  // when not a star
};
using Glob = std::vector<Element>;

constexpr size_t npos = std::string::npos;
// More positions than this in one question are not analysed.
constexpr size_t kMaxPositions = 4096;
// Distinct states one question may visit before giving up.
constexpr size_t kMaxStates = 4096;

constexpr const char* kClassNames[] = {"alnum", "alpha", "blank", "cntrl", "digit", "graph",
                                       "lower", "print", "punct", "space", "upper", "xdigit"};

// The index just past the `]` closing the bracket expression at p[start]
// ('['), read as glibc's fnmatch reads it: a `]` first (after `!` or `^`)
// is a member, `\` escapes, `a-z` is a range, `[:alpha:]` a class. npos for
// forms not modelled: unterminated, [.x.], [=x=], unknown class names.
size_t BracketEnd(const std::string& p, size_t start) {
  size_t i = start + 1;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    // With POSIXLY_CORRECT set, glibc takes '^' as a member.
    if (p[i] == '^' && std::getenv("POSIXLY_CORRECT") != nullptr) return npos;
    ++i;
  }
  for (bool first = true;; first = false) {
    if (i >= p.size()) return npos;
    const char c = p[i];
    if (c == ']' && !first) return i + 1;
    const char next = i + 1 < p.size() ? p[i + 1] : '\0';
    if (c == '[' && (next == '.' || next == '=')) return npos;
    if (c == '[' && next == ':') {
      const size_t close = p.find(":]", i + 2);
      if (close == npos) return npos;
      const std::string name = p.substr(i + 2, close - i - 2);
      if (std::none_of(std::begin(kClassNames), std::end(kClassNames),
                       [&](const char* n) { return name == n; })) {
        return npos;
      }
      i = close + 2;  // glibc reads no range after a class
      continue;
    }
    i += c == '\\' ? 2 : 1;
    if (i >= p.size()) return npos;
    if (p[i] == '-' && i + 1 < p.size() && p[i + 1] != ']') {  // a range: skip its end
      const char end = p[i + 1];
      if (end == '[') return npos;
      i += end == '\\' ? 3 : 2;
    }
  }
}

// The elements of `p`, or none when it uses a form not modelled. `*cost`
// grows by the work done (each bracket is probed byte by byte).
std::optional<Glob> Compile(const std::string& p, size_t* cost) {
  Glob g;
  for (size_t i = 0; i < p.size();) {
    Element e;
    const char c = p[i];
    if (c == '*') {
      ++i;
      if (!g.empty() && g.back().star) continue;  // `**` is `*`
      e.star = true;
    } else if (c == '?') {
      e.bytes.set();
      ++i;
    } else if (c == '[') {
      const size_t end = BracketEnd(p, i);
      if (end == npos) return std::nullopt;
      // The members, as fnmatch itself decides them for one byte.
      const std::string token = p.substr(i, end - i);
      for (int b = 1; b < 256; ++b) {
        const char name[2] = {static_cast<char>(b), '\0'};
        e.bytes.set(b, fnmatch(token.c_str(), name, 0) == 0);
      }
      *cost += 256;
      i = end;
    } else if (c == '\\' && i + 1 < p.size()) {
      e.bytes.set(static_cast<unsigned char>(p[i + 1]));
      i += 2;
    } else if (c == '\\') {
      ++i;  // a trailing `\`: glibc matches nothing, as an empty set does
    } else {
      e.bytes.set(static_cast<unsigned char>(c));
      ++i;
    }
    e.bytes.reset(0);  // names hold no NUL
    g.push_back(e);
    if (g.size() > kMaxPositions) return std::nullopt;
  }
  return g;
}

// The UTF-8 automaton over names: state 0 is "between characters" (the only
// accepting one), 1-3 await that many continuation bytes, 4-7 await the
// restricted first continuation after E0, ED, F0 and F4. -1 is dead.
int Utf8Next(int state, unsigned char b) {
  const bool cont = b >= 0x80 && b <= 0xBF;
  switch (state) {
    case 0:
      if (b >= 0x01 && b <= 0x7F) return 0;
      if (b >= 0xC2 && b <= 0xDF) return 1;
      if (b == 0xE0) return 4;
      if (b == 0xED) return 5;
      if (b >= 0xE1 && b <= 0xEF) return 2;
      if (b == 0xF0) return 6;
      if (b == 0xF4) return 7;
      if (b >= 0xF1 && b <= 0xF3) return 3;
      return -1;
    case 1:
    case 2:
    case 3:
      return cont ? state - 1 : -1;
    case 4:
      return b >= 0xA0 && b <= 0xBF ? 1 : -1;
    case 5:
      return b >= 0x80 && b <= 0x9F ? 1 : -1;
    case 6:
      return b >= 0x90 && b <= 0xBF ? 2 : -1;
    case 7:
      return b >= 0x80 && b <= 0x8F ? 2 : -1;
  }
  return -1;
}
constexpr int kUtf8States = 8;

// Bytes in the order examples are built from: readable ones first.
const std::vector<unsigned char>& PreferredBytes() {
  static const std::vector<unsigned char> order = [] {
    std::vector<unsigned char> out;
    std::bitset<256> taken;
    auto add = [&](int from, int to) {
      for (int b = from; b <= to; ++b) {
        if (!taken[b]) out.push_back(static_cast<unsigned char>(b));
        taken.set(b);
      }
    };
    add('a', 'z');
    add('0', '9');
    add('_', '_');
    add('/', '/');
    add('.', '.');
    add('-', '-');
    add('A', 'Z');
    add(0x20, 0x7E);
    add(0x80, 0xFF);
    add(0x01, 0x1F);
    add(0x7F, 0x7F);
    return out;
  }();
  return order;
}

// Bytes 1-255 numbered by how they move the UTF-8 automaton.
const std::array<int, 256>& Utf8Classes() {
  static const std::array<int, 256> classes = [] {
    std::array<int, 256> cls{};
    std::map<std::array<int, kUtf8States>, int> by_moves;
    for (int b = 1; b < 256; ++b) {
      std::array<int, kUtf8States> moves;
      for (int s = 0; s < kUtf8States; ++s) moves[s] = Utf8Next(s, static_cast<unsigned char>(b));
      cls[b] = by_moves.emplace(moves, static_cast<int>(by_moves.size())).first->second;
    }
    return cls;
  }();
  return classes;
}

using Bits = std::vector<uint64_t>;

// One question: globs[0] is the pattern, the rest the others, their
// positions side by side in one bit vector. Bytes that every automaton (and
// UTF-8) treats alike form a class; each class moves the positions by masks.
class Product {
 public:
  explicit Product(const std::vector<Glob>& globs) {
    for (const Glob& g : globs) {
      first_.push_back(positions_);
      positions_ += g.size() + 1;
      last_.push_back(positions_ - 1);
    }
    words_ = (positions_ + 63) / 64;
    star_.assign(words_, 0);
    pattern_.assign(words_, 0);
    for (size_t i = first_[0]; i <= last_[0]; ++i) Set(&pattern_, i);
    for (size_t k = 0; k < globs.size(); ++k) {
      for (size_t j = 0; j < globs[k].size(); ++j) {
        if (globs[k][j].star) Set(&star_, first_[k] + j);
      }
    }
    MakeClasses(globs);
  }

  size_t positions() const { return positions_; }
  size_t classes() const { return reps_.size(); }
  unsigned char rep(size_t c) const { return reps_[c]; }

  Bits Start() const {
    Bits s(words_, 0);
    for (size_t at : first_) Set(&s, at);
    Close(&s);
    return s;
  }

  // The positions after reading a byte of class `c` in positions `from`:
  // a star keeps its position, a matching byte element moves one on.
  // REQUIRES: to->size() is the state size (as Start()'s).
  void Step(const Bits& from, size_t c, Bits* to) const {
    const Bits& accepts = accept_[c];
    uint64_t carry = 0;
    for (size_t w = 0; w < words_; ++w) {
      const uint64_t moving = from[w] & accepts[w];
      (*to)[w] = (moving << 1) | carry | (from[w] & star_[w]);
      carry = moving >> 63;
    }
    Close(to);
  }

  bool Accepts(const Bits& s, size_t k) const { return Has(s, last_[k]); }

  // The pattern (globs[0]) still has a position: it may match what follows.
  bool PatternAlive(const Bits& s) const {
    for (size_t w = 0; w < words_; ++w) {
      if (s[w] & pattern_[w]) return true;
    }
    return false;
  }

  size_t count() const { return first_.size(); }

 private:
  static bool Has(const Bits& s, size_t i) { return (s[i / 64] >> (i % 64)) & 1; }
  static void Set(Bits* s, size_t i) { (*s)[i / 64] |= uint64_t{1} << (i % 64); }

  // A star may match nothing: a position before one reaches the next. (No
  // two stars are neighbours, so one pass is enough.)
  void Close(Bits* s) const {
    uint64_t carry = 0;
    for (size_t w = 0; w < words_; ++w) {
      const uint64_t skipping = (*s)[w] & star_[w];
      (*s)[w] |= (skipping << 1) | carry;
      carry = skipping >> 63;
    }
  }

  // Splits the bytes by their UTF-8 moves, then by each element's set; one
  // representative per class, the most readable byte of it.
  void MakeClasses(const std::vector<Glob>& globs) {
    std::array<int, 256> cls = Utf8Classes();
    int count = *std::max_element(cls.begin(), cls.end()) + 1;
    std::vector<int> split;
    for (const Glob& g : globs) {
      for (const Element& e : g) {
        if (e.star) continue;
        split.assign(2 * static_cast<size_t>(count), -1);
        int next = 0;
        for (int b = 1; b < 256; ++b) {
          int& to = split[2 * static_cast<size_t>(cls[b]) + (e.bytes[b] ? 1 : 0)];
          if (to < 0) to = next++;
          cls[b] = to;
        }
        count = next;
      }
    }
    std::vector<bool> seen(static_cast<size_t>(count), false);
    std::vector<unsigned char> reps;
    for (unsigned char b : PreferredBytes()) {
      if (seen[static_cast<size_t>(cls[b])]) continue;
      seen[static_cast<size_t>(cls[b])] = true;
      reps.push_back(b);
    }
    reps_ = reps;
    for (unsigned char b : reps_) {
      Bits accepts(words_, 0);
      for (size_t k = 0; k < globs.size(); ++k) {
        for (size_t j = 0; j < globs[k].size(); ++j) {
          if (!globs[k][j].star && globs[k][j].bytes[b]) Set(&accepts, first_[k] + j);
        }
      }
      accept_.push_back(std::move(accepts));
    }
  }

  std::vector<size_t> first_, last_;  // each glob's first and final position
  size_t positions_ = 0;
  size_t words_ = 0;
  Bits star_;     // positions of stars
  Bits pattern_;  // positions of globs[0]
  std::vector<unsigned char> reps_;
  std::vector<Bits> accept_;  // per class: positions whose element takes it
};

}  // namespace

PatternRelation PatternOracle::Relate(const std::string& pattern,
                                      std::span<const std::string> others) {
  PatternRelation undecided;
  // fnmatch reads bytes only in a single-byte locale; this process never
  // calls setlocale, but a library could.
  if (MB_CUR_MAX != 1) return undecided;
  size_t cost = 0;
  std::vector<Glob> globs;
  for (size_t k = 0; k <= others.size(); ++k) {
    std::optional<Glob> g = Compile(k == 0 ? pattern : others[k - 1], &cost);
    if (!g) return undecided;
    globs.push_back(std::move(*g));
  }
  size_t positions = 0;
  for (const Glob& g : globs) positions += g.size() + 1;
  if (positions > kMaxPositions || cost > budget_) return undecided;
  budget_ -= cost;
  const Product product(globs);
  // Each step costs about a word per 64 positions, and a state to remember.
  const size_t step_cost = 1 + product.positions() / 64;

  // Breadth first over (positions, UTF-8 state), so the first name found of
  // each kind is a shortest one.
  struct Node {
    Bits bits;
    int utf8;
    size_t parent;
    unsigned char byte;
  };
  std::vector<Node> nodes;
  std::unordered_map<std::string, size_t> seen;
  auto key = [](const Bits& bits, int utf8) {
    std::string k(reinterpret_cast<const char*>(bits.data()), bits.size() * sizeof(uint64_t));
    k += static_cast<char>(utf8);
    return k;
  };
  auto name_of = [&](size_t at) {
    std::string name;
    for (; at != 0; at = nodes[at].parent) name += static_cast<char>(nodes[at].byte);
    std::reverse(name.begin(), name.end());
    return name;
  };
  nodes.push_back({product.Start(), 0, 0, 0});
  Bits next = nodes[0].bits;  // scratch, one allocation
  seen.emplace(key(nodes[0].bits, 0), 0);
  PatternRelation r;
  bool uncovered = false;
  for (size_t at = 0; at < nodes.size(); ++at) {
    if (nodes[at].utf8 == 0 && product.Accepts(nodes[at].bits, 0)) {
      r.matches_some = true;
      bool other = false;
      for (size_t k = 1; k < product.count(); ++k) {
        other = other || product.Accepts(nodes[at].bits, k);
      }
      if (other && !r.shared) r.shared = name_of(at);
      uncovered = uncovered || !other;
      // Nothing more to learn (with no others, nothing is ever shared).
      if (uncovered && (r.shared || others.empty())) break;
    }
    for (size_t c = 0; c < product.classes(); ++c) {
      if (budget_ < step_cost) return undecided;
      budget_ -= step_cost;
      const unsigned char b = product.rep(c);
      const int utf8 = Utf8Next(nodes[at].utf8, b);
      if (utf8 < 0) continue;
      product.Step(nodes[at].bits, c, &next);
      if (!product.PatternAlive(next)) continue;
      if (!seen.emplace(key(next, utf8), nodes.size()).second) continue;
      if (nodes.size() >= kMaxStates) return undecided;
      nodes.push_back({next, utf8, at, b});
    }
  }
  r.decided = true;
  r.covered = !uncovered;
  return r;
}

}  // namespace wd
