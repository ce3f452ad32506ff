#include "core/npy_header.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "tests/test_util.h"

namespace wd {
namespace {

// A .npy prefix + header text for `major`, padded the way NumPy pads (spaces
// and a final '\n' up to a multiple of 64) unless `pad` is false.
std::vector<uint8_t> Npy(int major, std::string text, bool pad = true) {
  size_t prefix = major == 1 ? 10 : 12;
  if (pad) {
    text += '\n';
    size_t total = (prefix + text.size() + 63) / 64 * 64;
    text.insert(text.size() - 1, total - prefix - text.size(), ' ');
  }
  std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<uint8_t>(major), 0};
  for (size_t i = 0; i < prefix - 8; ++i) b.push_back(static_cast<uint8_t>(text.size() >> (8 * i)));
  b.insert(b.end(), text.begin(), text.end());
  return b;
}

std::string Dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': " + descr + ", 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST_CASE("every supported descr parses to its kind, byte order and item size") {
  struct Row {
    const char* descr;
    SourceKind kind;
    ByteOrder order;
    uint32_t item_size;
  };
  const Row rows[] = {
      {"<f2", SourceKind::kFloat, ByteOrder::kLittle, 2},
      {"<f4", SourceKind::kFloat, ByteOrder::kLittle, 4},
      {"<f8", SourceKind::kFloat, ByteOrder::kLittle, 8},
      {">f8", SourceKind::kFloat, ByteOrder::kBig, 8},
      {"=f4", SourceKind::kFloat, ByteOrder::kLittle, 4},
      {"|i1", SourceKind::kSignedInt, ByteOrder::kNone, 1},
      {"<i2", SourceKind::kSignedInt, ByteOrder::kLittle, 2},
      {"<i4", SourceKind::kSignedInt, ByteOrder::kLittle, 4},
      {">i4", SourceKind::kSignedInt, ByteOrder::kBig, 4},
      {"<i8", SourceKind::kSignedInt, ByteOrder::kLittle, 8},
      {"|u1", SourceKind::kUnsignedInt, ByteOrder::kNone, 1},
      {"<u2", SourceKind::kUnsignedInt, ByteOrder::kLittle, 2},
      {"<u4", SourceKind::kUnsignedInt, ByteOrder::kLittle, 4},
      {"<u8", SourceKind::kUnsignedInt, ByteOrder::kLittle, 8},
      {"|b1", SourceKind::kBool, ByteOrder::kNone, 1},
      {"<c8", SourceKind::kComplex, ByteOrder::kLittle, 8},
      {"<c16", SourceKind::kComplex, ByteOrder::kLittle, 16},
      {">c16", SourceKind::kComplex, ByteOrder::kBig, 16},
      {"<U7", SourceKind::kUnicode, ByteOrder::kLittle, 28},
      {">U1", SourceKind::kUnicode, ByteOrder::kBig, 4},
      {"|S3", SourceKind::kBytes, ByteOrder::kNone, 3},
      {"|S12", SourceKind::kBytes, ByteOrder::kNone, 12},
  };
  for (const Row& r : rows) {
    CAPTURE(r.descr);
    auto h = ParseNpyHeader(Npy(1, Dict(std::string("'") + r.descr + "'", "(2, 3)")), "t.npy");
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    CHECK(h->dtype.descr == r.descr);
    CHECK(h->dtype.kind == r.kind);
    CHECK(h->dtype.order == r.order);
    CHECK(h->dtype.item_size == r.item_size);
    CHECK(h->element_count == 6);
    CHECK(h->data_bytes == 6 * r.item_size);
  }
}

TEST_CASE("shapes, key order, quoting and whitespace variants are accepted") {
  struct Row {
    std::string text;
    std::vector<uint64_t> shape;
    uint64_t count;
    bool fortran;
  };
  const Row rows[] = {
      {Dict("'<f4'", "()"), {}, 1, false},
      {Dict("'<f4'", "(3,)"), {3}, 3, false},
      {Dict("'<f4'", "(2, 3)"), {2, 3}, 6, false},
      {Dict("'<f4'", "(2,3,)"), {2, 3}, 6, false},
      {Dict("'<f4'", "( 4 , )"), {4}, 4, false},
      {Dict("'<f4'", "(0, 5)"), {0, 5}, 0, false},
      {Dict("'<f4'", "(0, 9223372036854775807)"), {0, 9223372036854775807ull}, 0, false},
      {Dict("'<f4'", "(2, 3, 4)", true), {2, 3, 4}, 24, true},
      {"{'shape': (5,), 'fortran_order': False, 'descr': '<f4'}", {5}, 5, false},
      {"{\"descr\": \"<f4\", \"fortran_order\": True, \"shape\": (1, 1)}", {1, 1}, 1, true},
      {"  {\n'descr':'<f4',\t'fortran_order':False,'shape':(7,)\n}  ", {7}, 7, false},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    auto h = ParseNpyHeader(Npy(1, r.text), "t.npy");
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    CHECK(h->shape == r.shape);
    CHECK(h->element_count == r.count);
    CHECK(h->data_bytes == 4 * r.count);
    CHECK(h->fortran_order == r.fortran);
  }
}

TEST_CASE("versions 1.0, 2.0 and 3.0 give the header size the length field says") {
  const std::string text = Dict("'<f4'", "(2, 3)");
  for (int major : {1, 2, 3}) {
    for (bool pad : {true, false}) {
      CAPTURE(major);
      CAPTURE(pad);
      std::vector<uint8_t> bytes = Npy(major, text, pad);
      auto h = ParseNpyHeader(bytes, "t.npy");
      REQUIRE_MESSAGE(h.ok(), h.status().message());
      CHECK(h->major == major);
      CHECK(h->minor == 0);
      CHECK(h->header_size == bytes.size());
      if (pad) CHECK(h->header_size % 64 == 0);
    }
  }
}

TEST_CASE("reading a header consumes exactly the header and leaves the data") {
  std::vector<uint8_t> bytes = Npy(1, Dict("'|u1'", "(3,)"));
  size_t header = bytes.size();
  bytes.insert(bytes.end(), {7, 8, 9});
  MemorySource src(bytes);
  auto h = ReadNpyHeader(src, "t.npy");
  REQUIRE(h.ok());
  CHECK(h->header_size == header);
  uint8_t data[8];
  auto n = src.Read(data, sizeof data);
  REQUIRE(n.ok());
  CHECK(*n == 3);
  CHECK(data[0] == 7);
  CHECK(data[2] == 9);
}

TEST_CASE("headers NumPy wrote as versions 1.0, 2.0 and 3.0 are read") {
  for (int major : {1, 2, 3}) {
    std::string path = test::SourcePath("data/reader/v" + std::to_string(major) + ".npy");
    CAPTURE(path);
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    FileRegionSource src(fd, 0, 1 << 20, path, /*owns_fd=*/true);
    auto h = ReadNpyHeader(src, path);
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    CHECK(h->major == major);
    CHECK(h->dtype.descr == "<f4");
    CHECK(h->shape == std::vector<uint64_t>{2, 3});
    CHECK(h->header_size == 128);
    CHECK(h->data_bytes == 24);
  }
}

TEST_CASE("malformed headers are refused with the reason") {
  auto v1 = [](const std::string& text) { return Npy(1, text); };
  auto descr = [](const std::string& d) { return Npy(1, Dict(d, "(2,)")); };
  auto shape = [](const std::string& s) { return Npy(1, Dict("'<f4'", s)); };
  std::vector<uint8_t> zip = Bytes(std::string("PK\x03\x04\x14\0\0\0\0\0", 10));
  std::vector<uint8_t> bad_magic = Npy(1, Dict("'<f4'", "()"));
  bad_magic[5] = 'Z';
  std::vector<uint8_t> v4 = Npy(1, Dict("'<f4'", "()"));
  v4[6] = 4;
  std::vector<uint8_t> v11 = Npy(1, Dict("'<f4'", "()"));
  v11[7] = 1;
  std::vector<uint8_t> huge = Npy(2, "{}", false);
  huge[8] = 0xa0, huge[9] = 0x86, huge[10] = 0x01;  // 100000
  std::vector<uint8_t> short_prefix = Npy(1, "{}");
  short_prefix.resize(8);
  std::vector<uint8_t> short_v2 = Npy(2, "{}");
  short_v2.resize(11);
  struct Row {
    const char* name;
    std::vector<uint8_t> bytes;
    const char* error;
  };
  const Row rows[] = {
      {"empty", {}, "t.npy: not a .npy file: expected magic \\x93NUMPY, found no bytes"},
      {"bad magic", bad_magic, "found '\\x93NUMPZ'"},
      {"zip", zip, "(this looks like a zip: a .npz?)"},
      {"version 4.0", v4, "unsupported .npy version 4.0 (1.0, 2.0 and 3.0 are read)"},
      {"version 1.1", v11, "unsupported .npy version 1.1"},
      {"prefix cut", short_prefix, "data ends at byte 8, before the version and header length"},
      {"v2 length cut", short_v2, "data ends at byte 11, inside the header length field"},
      {"too long", huge, "length field says 100000 bytes; more than the 65536 accepted"},
      {"not a dict", v1("[1, 2]"), "expected '{' to open the header dict at byte 10"},
      {"missing shape", v1("{'descr': '<f4', 'fortran_order': False}"), "missing key 'shape'"},
      {"missing descr", v1("{'shape': (), 'fortran_order': False}"), "missing key 'descr'"},
      {"missing fortran", v1("{'shape': (), 'descr': '<f4'}"), "missing key 'fortran_order'"},
      {"duplicate", v1("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}"),
       "key 'descr' appears twice at byte 27"},
      {"extra key", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}"),
       "unexpected key 'x'"},
      {"no colon", v1("{'descr' '<f4'}"), "expected ':' after key 'descr'"},
      {"no comma", v1("{'descr': '<f4' 'shape': ()}"), "expected ',' or '}' after the value"},
      {"double comma", v1("{'descr': '<f4',, 'shape': ()}"), "expected a quoted string"},
      {"trailing text", v1(Dict("'<f4'", "()") + " x"), "unexpected text after the header dict"},
      {"unterminated", v1("{'descr: '<f4'}"), "expected ':' after key 'descr: '"},
      {"open string", Npy(1, "{'descr", false), "unterminated string"},
      {"newline in string", v1("{'descr\n': 1}"), "non-printable byte in a header string"},
      {"escape", v1(Dict("'<f\\x34'", "()")), "escape sequences are not accepted"},
      {"fortran int", v1("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}"),
       "'fortran_order' must be True or False"},
      {"fortran lower", v1("{'descr': '<f4', 'fortran_order': true, 'shape': ()}"),
       "'fortran_order' must be True or False"},
      {"int not tuple", shape("(3)"), "'shape' (n) is an int, not a tuple"},
      {"list shape", shape("[2, 3]"), "'shape' must be a tuple"},
      {"negative", shape("(2, -1)"), "negative dimension in 'shape' at byte 64"},
      {"float dim", shape("(3.0,)"), "dimension is not a plain decimal integer"},
      {"hex dim", shape("(0x10,)"), "dimension is not a plain decimal integer"},
      {"underscore", shape("(1_000,)"), "dimension is not a plain decimal integer"},
      {"long suffix", shape("(3L,)"), "dimension is not a plain decimal integer"},
      {"leading zero", shape("(03,)"), "dimension has a leading zero"},
      {"missing comma", shape("(2 3)"), "expected ',' or ')' in 'shape'"},
      {"lone comma", shape("(,)"), "expected a dimension"},
      {"plus sign", shape("(+3,)"), "expected a dimension"},
      {"unclosed", shape("(2, 3"), "expected a dimension"},
      {"huge dim", shape("(99999999999999999999,)"), "dimension too large"},
      {"element overflow", shape("(1099511627776, 1099511627776)"),
       "shape (1099511627776, 1099511627776) holds more than 2^63 elements"},
      {"byte overflow", shape("(4611686018427387904,)"),
       "shape (4611686018427387904,) of <f4 is more than 2^63 bytes"},
      {"object", descr("'|O'"),
       "dtype descr '|O' is object: reading it would need unpickling; weightdrop never unpickles"},
      {"structured", v1("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}"),
       "dtype is structured (a list descr): structured dtypes are not supported"},
      {"void", descr("'|V8'"), "dtype descr '|V8' is void"},
      {"datetime", descr("'<M8[ns]'"), "dtype descr '<M8[ns]' is datetime64"},
      {"timedelta", descr("'<m8[s]'"), "dtype descr '<m8[s]' is timedelta64"},
      {"float128", descr("'<f16'"), "dtype descr '<f16' is extended precision (float128"},
      {"longdouble", descr("'<f12'"), "is extended precision"},
      {"complex256", descr("'<c32'"), "dtype descr '<c32' is extended precision"},
      {"float3", descr("'<f3'"), "dtype descr '<f3' has an unsupported float size"},
      {"int16B", descr("'<i16'"), "has an unsupported integer size"},
      {"bool2", descr("'|b2'"), "has an unsupported bool size"},
      {"U0", descr("'<U0'"), "dtype descr '<U0' has an unsupported string length"},
      {"S0", descr("'|S0'"), "dtype descr '|S0' has an unsupported bytes length"},
      {"unknown kind", descr("'<x4'"), "dtype descr '<x4' is not a dtype weightdrop reads"},
      {"no byte order", descr("'f4'"), "dtype descr 'f4' is not a dtype weightdrop reads"},
      {"type name", descr("'float32'"), "dtype descr 'float32' is not a dtype"},
      {"empty descr", descr("''"), "dtype descr '' is not a dtype"},
      {"descr not a string", descr("4"), "expected a quoted string"},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.name));
    auto h = ParseNpyHeader(r.bytes, "t.npy");
    REQUIRE_FALSE(h.ok());
    CHECK(h.status().kind() == ErrorKind::kBundle);
    CHECK_MESSAGE(h.status().message().find(r.error) != std::string::npos, h.status().message());
    CHECK(h.status().message().rfind("t.npy: ", 0) == 0);
  }
}

TEST_CASE("truncated header is reported with the byte offset") {
  std::vector<uint8_t> bytes = Npy(1, Dict("'<f4'", "(2, 3)"));
  REQUIRE(bytes.size() == 128);
  bytes.resize(57);
  auto h = ParseNpyHeader(bytes, "model.npz: member 'w.npy'");
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().kind() == ErrorKind::kBundle);
  CHECK(h.status().message() ==
        "model.npz: member 'w.npy': truncated .npy header: the data ends at byte 57 but the "
        "header length field says the header runs to byte 128");
}

TEST_CASE("parse errors quote the header text") {
  auto h = ParseNpyHeader(Npy(1, Dict("'|O'", "(2,)")), "w.npy");
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().message().find("(header text: {'descr': '|O', 'fortran_order': False, "
                                  "'shape': (2,), })") != std::string::npos);
}

TEST_CASE("ReadExact reports where the data ran out") {
  MemorySource src(std::vector<uint8_t>(5, 1));
  uint8_t buf[8];
  Status st = ReadExact(src, buf, 8, "a.npy", 100);
  REQUIRE_FALSE(st.ok());
  CHECK(st.kind() == ErrorKind::kBundle);
  CHECK(st.message() ==
        "a.npy: truncated: needed 8 bytes at byte 100 but the data ends at byte 105");
}

TEST_CASE("a file region reads its bytes and refuses a file that ends early") {
  test::TempDir dir;
  test::WriteFile(dir / "f", "0123456789");
  int fd = open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  {
    FileRegionSource src(fd, 2, 5, "f", /*owns_fd=*/false);
    uint8_t buf[16];
    auto n = src.Read(buf, sizeof buf);
    REQUIRE(n.ok());
    CHECK(std::string(buf, buf + *n) == "23456");
    n = src.Read(buf, sizeof buf);
    REQUIRE(n.ok());
    CHECK(*n == 0);
  }
  FileRegionSource past(fd, 8, 10, "f", /*owns_fd=*/true);
  uint8_t buf[16];
  auto n = past.Read(buf, sizeof buf);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().message() ==
        "f: file ends at byte 10 but 18 bytes were expected (did it shrink while being read?)");
}

}  // namespace
}  // namespace wd
