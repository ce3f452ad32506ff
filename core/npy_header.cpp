// Reads the .npy header; the accepted grammar is in docs/formats.md.
#include "core/npy_header.h"

#include <cstdio>
#include <cstring>
#include <limits>

namespace wd {
namespace {

constexpr uint8_t kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
constexpr size_t kMagicSize = sizeof(kMagic);
constexpr uint64_t kMaxCount = std::numeric_limits<int64_t>::max();  // NumPy's npy_intp
constexpr size_t kMaxRank = 64;
constexpr size_t kMaxStringLiteral = 256;

// Printable ASCII kept, everything else as \xNN.
std::string Escape(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
      out += static_cast<char>(p[i]);
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", p[i]);
      out += hex;
    }
  }
  return out;
}

uint64_t LoadLE(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

// Reads until n bytes or end of data; returns the count read.
Result<size_t> ReadUpTo(ByteSource& src, uint8_t* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    WD_ASSIGN_OR_RETURN(size_t r, src.Read(buf + got, n - got));
    if (r == 0) break;
    got += r;
  }
  return got;
}

std::string ShapeString(const std::vector<uint64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

Status ParseDescr(const std::string& descr, NpyDtype& out);  // below

// Parses the dict text, byte by byte. Offsets in messages are file offsets.
class DictParser {
 public:
  DictParser(const std::string& text, uint64_t base, const std::string& where, NpyHeader& out)
      : text_(text), base_(base), where_(where), out_(out) {}

  Status Parse() {
    SkipWs();
    if (!Consume('{')) return Error("expected '{' to open the header dict");
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    for (;;) {
      SkipWs();
      if (Consume('}')) break;
      size_t key_pos = pos_;
      std::string key;
      WD_RETURN_IF_ERROR(ParseString(key));
      SkipWs();
      if (!Consume(':')) return Error("expected ':' after key '" + key + "'");
      SkipWs();
      bool* seen = key == "descr"           ? &seen_descr
                   : key == "fortran_order" ? &seen_fortran
                   : key == "shape"         ? &seen_shape
                                            : nullptr;
      if (seen == nullptr) {
        pos_ = key_pos;
        return Error("unexpected key '" + key +
                     "' (only 'descr', 'fortran_order' and 'shape' are allowed)");
      }
      if (*seen) {
        pos_ = key_pos;
        return Error("key '" + key + "' appears twice");
      }
      *seen = true;
      WD_RETURN_IF_ERROR(key == "descr"   ? ParseDescrValue()
                         : key == "shape" ? ParseShape()
                                          : ParseBool(out_.fortran_order));
      SkipWs();
      if (Consume(',')) continue;
      if (Consume('}')) break;
      return Error("expected ',' or '}' after the value of '" + key + "'");
    }
    SkipWs();
    if (pos_ != text_.size()) return Error("unexpected text after the header dict");
    if (!seen_descr) return Error("missing key 'descr'");
    if (!seen_fortran) return Error("missing key 'fortran_order'");
    if (!seen_shape) return Error("missing key 'shape'");
    return Status::Ok();
  }

 private:
  Status Error(const std::string& msg) const {
    size_t end = text_.find_last_not_of(" \t\r\n");
    std::string shown = text_.substr(0, end == std::string::npos ? 0 : end + 1);
    bool cut = shown.size() > 200;
    if (cut) shown.resize(200);
    return Status::Bundle(
        where_ + ": .npy header: " + msg + " at byte " + std::to_string(base_ + pos_) +
        " (header text: " + Escape(reinterpret_cast<const uint8_t*>(shown.data()), shown.size()) +
        (cut ? "..." : "") + ")");
  }

  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek() const { return AtEnd() ? '\0' : text_[pos_]; }
  bool Consume(char c) {
    if (AtEnd() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void SkipWs() {
    while (!AtEnd() && std::strchr(" \t\r\n", text_[pos_]) != nullptr) ++pos_;
  }
  static bool IsIdentChar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '.';
  }

  // A quoted string without escapes: 'abc' or "abc".
  Status ParseString(std::string& out) {
    char q = Peek();
    if (q != '\'' && q != '"') return Error("expected a quoted string");
    size_t start = ++pos_;
    while (!AtEnd() && text_[pos_] != q) {
      unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '\\') return Error("escape sequences are not accepted in header strings");
      if (c < 0x20 || c >= 0x7f) return Error("non-printable byte in a header string");
      if (pos_ - start >= kMaxStringLiteral) return Error("string literal too long");
      ++pos_;
    }
    if (AtEnd()) return Error("unterminated string");
    out = text_.substr(start, pos_ - start);
    ++pos_;
    return Status::Ok();
  }

  Status ParseBool(bool& out) {
    size_t start = pos_;
    while (!AtEnd() && IsIdentChar(text_[pos_])) ++pos_;
    std::string word = text_.substr(start, pos_ - start);
    if (word == "True" || word == "False") {
      out = word == "True";
      return Status::Ok();
    }
    pos_ = start;
    return Error("'fortran_order' must be True or False");
  }

  Status ParseDim(uint64_t& out) {
    if (Peek() == '-') return Error("negative dimension in 'shape'");
    if (Peek() < '0' || Peek() > '9') return Error("expected a dimension (a decimal integer)");
    size_t start = pos_;
    uint64_t v = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      uint64_t d = static_cast<uint64_t>(text_[pos_++] - '0');
      if (v > (kMaxCount - d) / 10) {
        pos_ = start;
        return Error("dimension too large (over 2^63 - 1)");
      }
      v = v * 10 + d;
    }
    if (text_[start] == '0' && pos_ - start > 1) {
      pos_ = start;
      return Error("dimension has a leading zero");
    }
    if (IsIdentChar(Peek())) return Error("dimension is not a plain decimal integer");
    out = v;
    return Status::Ok();
  }

  Status ParseShape() {
    if (!Consume('(')) return Error("'shape' must be a tuple such as (2, 3), (3,) or ()");
    bool trailing_comma = false;
    for (;;) {
      SkipWs();
      if (Consume(')')) break;
      if (!out_.shape.empty() && !trailing_comma) return Error("expected ',' or ')' in 'shape'");
      if (out_.shape.size() == kMaxRank) return Error("'shape' has more than 64 dimensions");
      uint64_t dim = 0;
      WD_RETURN_IF_ERROR(ParseDim(dim));
      out_.shape.push_back(dim);
      SkipWs();
      trailing_comma = Consume(',');
    }
    if (out_.shape.size() == 1 && !trailing_comma) {
      return Error("'shape' (n) is an int, not a tuple: a 1-d shape is written (n,)");
    }
    return Status::Ok();
  }

  Status ParseDescrValue() {
    if (Peek() == '[') {
      return Error("dtype is structured (a list descr): structured dtypes are not supported");
    }
    size_t start = pos_;
    std::string descr;
    WD_RETURN_IF_ERROR(ParseString(descr));
    Status st = ParseDescr(descr, out_.dtype);
    if (!st.ok()) pos_ = start;
    return st.ok() ? st : Error(st.message());
  }

  const std::string& text_;
  uint64_t base_;
  const std::string& where_;
  NpyHeader& out_;
  size_t pos_ = 0;
};

// Digits of a descr's size: plain decimal, no sign, no leading zero.
bool ParseDescrSize(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 10 || (s[0] == '0' && s.size() > 1)) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

// Refusals by kind character, whatever the size.
const char* RefusedKind(char kind) {
  switch (kind) {
    case 'O':
      return "is object: reading it would need unpickling; weightdrop never unpickles";
    case 'V':
      return "is void (raw or structured records), which is not supported";
    case 'M':
      return "is datetime64, which is not supported";
    case 'm':
      return "is timedelta64, which is not supported";
    default:
      return nullptr;
  }
}

// Kind and item size for a supported (kind, size), or a reason it is not.
const char* ClassifyDescr(char kind, uint64_t n, NpyDtype& out) {
  auto is = [n](std::initializer_list<uint64_t> ok) {
    for (uint64_t v : ok)
      if (v == n) return true;
    return false;
  };
  out.item_size = static_cast<uint32_t>(n);
  switch (kind) {
    case 'f':
      out.kind = SourceKind::kFloat;
      if (is({2, 4, 8})) return nullptr;
      return is({10, 12, 16}) ? "is extended precision (float128/longdouble), not supported"
                              : "has an unsupported float size";
    case 'c':
      out.kind = SourceKind::kComplex;
      if (is({8, 16})) return nullptr;
      return is({20, 24, 32}) ? "is extended precision (complex256/clongdouble), not supported"
                              : "has an unsupported complex size";
    case 'i':
    case 'u':
      out.kind = kind == 'i' ? SourceKind::kSignedInt : SourceKind::kUnsignedInt;
      return is({1, 2, 4, 8}) ? nullptr : "has an unsupported integer size";
    case 'b':
      out.kind = SourceKind::kBool;
      return n == 1 ? nullptr : "has an unsupported bool size";
    case 'U':
      out.kind = SourceKind::kUnicode;
      out.item_size = static_cast<uint32_t>(4 * n);
      return n >= 1 && n <= (1u << 28) ? nullptr : "has an unsupported string length";
    case 'S':
      out.kind = SourceKind::kBytes;
      return n >= 1 && n <= (1u << 30) ? nullptr : "has an unsupported bytes length";
    default:
      return "is not a dtype weightdrop reads";
  }
}

// See docs/formats.md ("descr").
Status ParseDescr(const std::string& descr, NpyDtype& out) {
  auto refuse = [&](const std::string& why) {
    return Status::Bundle("dtype descr '" + descr + "' " + why);
  };
  if (descr.size() < 2 || std::strchr("<>|=", descr[0]) == nullptr) {
    return refuse("is not a dtype weightdrop reads (expected e.g. '<f4', '|b1', '<U7')");
  }
  char kind = descr[1];
  if (const char* why = RefusedKind(kind)) return refuse(why);
  uint64_t n = 0;
  if (!ParseDescrSize(descr.substr(2), n)) return refuse("is not a dtype weightdrop reads");
  out.descr = descr;
  if (const char* why = ClassifyDescr(kind, n, out)) return refuse(why);
  bool single = out.item_size == 1 || out.kind == SourceKind::kBytes;
  out.order = single ? ByteOrder::kNone : descr[0] == '>' ? ByteOrder::kBig : ByteOrder::kLittle;
  return Status::Ok();
}

Status ComputeSizes(NpyHeader& h, const std::string& where) {
  uint64_t count = 1;
  bool zero = false;
  for (uint64_t d : h.shape) zero = zero || d == 0;
  for (uint64_t d : h.shape) {
    if (zero) break;
    if (count > kMaxCount / d) {
      return Status::Bundle(where + ": .npy header: shape " + ShapeString(h.shape) +
                            " holds more than 2^63 elements");
    }
    count *= d;
  }
  h.element_count = zero ? 0 : count;
  if (h.element_count > kMaxCount / h.dtype.item_size) {
    return Status::Bundle(where + ": .npy header: shape " + ShapeString(h.shape) + " of " +
                          h.dtype.descr + " is more than 2^63 bytes");
  }
  h.data_bytes = h.element_count * h.dtype.item_size;
  return Status::Ok();
}

// Magic, version and header length; returns the prefix size (10 or 12).
Result<size_t> ReadPrefix(ByteSource& src, const std::string& where, NpyHeader& h,
                          uint32_t& text_len) {
  uint8_t p[12];
  WD_ASSIGN_OR_RETURN(size_t got, ReadUpTo(src, p, 10));
  if (std::memcmp(p, kMagic, std::min(got, kMagicSize)) != 0 || got == 0) {
    bool zip = got >= 2 && p[0] == 'P' && p[1] == 'K';
    return Status::Bundle(where + ": not a .npy file: expected magic \\x93NUMPY, found " +
                          (got ? "'" + Escape(p, std::min(got, kMagicSize)) + "'" : "no bytes") +
                          (zip ? " (this looks like a zip: a .npz?)" : ""));
  }
  if (got < 10) {
    return Status::Bundle(where + ": truncated .npy header: the data ends at byte " +
                          std::to_string(got) + ", before the version and header length");
  }
  h.major = p[6];
  h.minor = p[7];
  if (h.major < 1 || h.major > 3 || h.minor != 0) {
    return Status::Bundle(where + ": unsupported .npy version " + std::to_string(h.major) + "." +
                          std::to_string(h.minor) + " (1.0, 2.0 and 3.0 are read)");
  }
  if (h.major == 1) {
    text_len = static_cast<uint32_t>(LoadLE(p + 8, 2));
    return size_t{10};
  }
  WD_ASSIGN_OR_RETURN(size_t more, ReadUpTo(src, p + 10, 2));
  if (more < 2) {
    return Status::Bundle(where + ": truncated .npy header: the data ends at byte " +
                          std::to_string(10 + more) + ", inside the header length field");
  }
  text_len = static_cast<uint32_t>(LoadLE(p + 8, 4));
  return size_t{12};
}

}  // namespace

Result<NpyHeader> ReadNpyHeader(ByteSource& src, const std::string& where) {
  NpyHeader h;
  uint32_t text_len = 0;
  WD_ASSIGN_OR_RETURN(size_t prefix, ReadPrefix(src, where, h, text_len));
  if (text_len > kMaxNpyHeaderText) {
    return Status::Bundle(where + ": .npy header length field says " + std::to_string(text_len) +
                          " bytes; more than the " + std::to_string(kMaxNpyHeaderText) +
                          " accepted");
  }
  h.header_size = prefix + text_len;
  std::string text(text_len, '\0');
  WD_ASSIGN_OR_RETURN(size_t got, ReadUpTo(src, reinterpret_cast<uint8_t*>(text.data()), text_len));
  if (got < text_len) {
    return Status::Bundle(where + ": truncated .npy header: the data ends at byte " +
                          std::to_string(prefix + got) + " but the header length field says " +
                          "the header runs to byte " + std::to_string(h.header_size));
  }
  WD_RETURN_IF_ERROR(DictParser(text, prefix, where, h).Parse());
  WD_RETURN_IF_ERROR(ComputeSizes(h, where));
  return h;
}

Result<NpyHeader> ParseNpyHeader(const std::vector<uint8_t>& bytes, const std::string& where) {
  MemorySource src(bytes);
  return ReadNpyHeader(src, where);
}

}  // namespace wd
