// ElementCodec tests: NumPy element bytes of every accepted dtype against the
// bytes tfjs reads (fixtures from tests/data/make_quant_vectors.py, golden
// cases included), and the errors: int64 that does not fit, bad code points.
#include "core/element_codec.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace wd {
namespace {

// A NpyDtype from a NumPy descr such as "<f4", ">U6", "|S5" (tests only; the
// real parser is core/npy_header).
NpyDtype Dtype(const std::string& descr) {
  NpyDtype d;
  d.descr = descr;
  d.order = descr[0] == '>'   ? ByteOrder::kBig
            : descr[0] == '<' ? ByteOrder::kLittle
                              : ByteOrder::kNone;
  const uint32_t n = static_cast<uint32_t>(std::stoul(descr.substr(2)));
  d.item_size = n;
  switch (descr[1]) {
    case 'f':
      d.kind = SourceKind::kFloat;
      break;
    case 'i':
      d.kind = SourceKind::kSignedInt;
      break;
    case 'u':
      d.kind = SourceKind::kUnsignedInt;
      break;
    case 'b':
      d.kind = SourceKind::kBool;
      break;
    case 'c':
      d.kind = SourceKind::kComplex;
      break;
    case 'S':
      d.kind = SourceKind::kBytes;
      break;
    case 'U':
      d.kind = SourceKind::kUnicode;
      d.item_size = 4 * n;
      break;
    default:
      FAIL("unknown descr " << descr);
  }
  return d;
}

const uint8_t* U8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Converts numeric elements; the output buffer is sized by the mapping.
Result<std::string> Convert(const NpyDtype& d, const std::string& raw, size_t count,
                            const std::string& weight = "w", uint64_t first_index = 0) {
  std::string out(count * OutElementSize(MapDtype(d)), '\xAA');
  Status s = ConvertElements(d, U8(raw), count, reinterpret_cast<uint8_t*>(out.data()), weight,
                             first_index);
  if (!s.ok()) return s;
  return out;
}

Result<std::string> Strings(const NpyDtype& d, const std::string& raw, size_t count,
                            const std::string& weight = "w", uint64_t first_index = 0) {
  std::string out;
  Status s = AppendEncodedStrings(d, U8(raw), count, out, weight, first_index);
  if (!s.ok()) return s;
  return out;
}

template <typename T>
std::string Raw(std::initializer_list<T> values, bool big_endian = false) {
  std::string s;
  for (T v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    if (big_endian) std::reverse(b, b + sizeof(T));
    s.append(b, sizeof(T));
  }
  return s;
}

// UTF-32 code units, padded with NULs to `width` units per element.
std::string Utf32(std::initializer_list<std::u32string> elems, size_t width, bool big = false) {
  std::string s;
  for (const std::u32string& e : elems) {
    std::u32string padded = e;
    padded.resize(width, U'\0');
    for (char32_t c : padded) s += Raw<uint32_t>({static_cast<uint32_t>(c)}, big);
  }
  return s;
}

std::string Encoded(std::initializer_list<std::string> elems) {
  std::string s;
  for (const std::string& e : elems) s += Raw<uint32_t>({static_cast<uint32_t>(e.size())}) + e;
  return s;
}

TEST_CASE("every fixture dtype converts to the bytes tfjs reads, as NumPy/golden say") {
  const std::string blob = test::ReadFile(test::SourcePath("data/quant/elements.bin"));
  const auto index =
      nlohmann::json::parse(test::ReadFile(test::SourcePath("data/quant/elements.json")));
  REQUIRE(index.size() > 30);
  for (const auto& e : index) {
    const std::string name = e.at("name");
    INFO(name << " " << e.at("descr").get<std::string>());
    const NpyDtype d = Dtype(e.at("descr"));
    const size_t count = e.at("count");
    const std::string raw =
        blob.substr(e.at("input_offset").get<size_t>(), e.at("input_size").get<size_t>());
    const std::string want =
        blob.substr(e.at("output_offset").get<size_t>(), e.at("output_size").get<size_t>());
    REQUIRE(raw.size() == count * d.item_size);
    if (MapDtype(d) == OutDtype::kString) {
      auto got = Strings(d, raw, count);
      REQUIRE(got.ok());
      CHECK(*got == want);
      auto size = EncodedStringsSize(d, U8(raw), count, name, 0);
      REQUIRE(size.ok());
      CHECK(*size == want.size());
      continue;
    }
    auto got = Convert(d, raw, count, name);
    REQUIRE(got.ok());
    CHECK(*got == want);

    // Chunked conversion (as a streaming reader does it) gives the same bytes.
    const size_t half = count / 2, out_size = OutElementSize(MapDtype(d));
    auto a = Convert(d, raw.substr(0, half * d.item_size), half, name, 0);
    auto b = Convert(d, raw.substr(half * d.item_size), count - half, name, half);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a + *b == want);
    CHECK(a->size() == half * out_size);
  }
}

TEST_CASE("int64 and uint32/uint64 values outside int32 are refused naming weight and element") {
  struct Row {
    const char* descr;
    std::string raw;
    size_t count;
    uint64_t first_index;
    std::string message;
  };
  const std::string tail = ", which does not fit int32 (tfjs has no int64)";
  const Row rows[] = {
      {"<i8", Raw<int64_t>({1, 2, 3000000000LL, 4}), 4, 15,
       "weight 'x': element 17 (flat C-order index) is 3000000000" + tail},
      {"<i8", Raw<int64_t>({-2147483649LL}), 1, 0,
       "weight 'x': element 0 (flat C-order index) is -2147483649" + tail},
      {">i8", Raw<int64_t>({5, INT64_MIN}, true), 2, 0,
       "weight 'x': element 1 (flat C-order index) is -9223372036854775808" + tail},
      {"<u4", Raw<uint32_t>({0, 2147483648u}), 2, 0,
       "weight 'x': element 1 (flat C-order index) is 2147483648" + tail},
      {">u4", Raw<uint32_t>({4294967295u}, true), 1, 3,
       "weight 'x': element 3 (flat C-order index) is 4294967295" + tail},
      {"<u8", Raw<uint64_t>({7, 8, UINT64_MAX}), 3, 0,
       "weight 'x': element 2 (flat C-order index) is 18446744073709551615" + tail},
  };
  for (const Row& r : rows) {
    INFO(std::string(r.descr));
    auto got = Convert(Dtype(r.descr), r.raw, r.count, "x", r.first_index);
    REQUIRE_FALSE(got.ok());
    CHECK(got.status().kind() == ErrorKind::kBundle);
    CHECK(got.status().message().rfind(r.message, 0) == 0);
  }
}

TEST_CASE("int64 values at the int32 limits convert") {
  auto got = Convert(Dtype(">i8"), Raw<int64_t>({INT32_MIN, INT32_MAX, -1}, true), 3);
  REQUIRE(got.ok());
  CHECK(*got == Raw<int32_t>({INT32_MIN, INT32_MAX, -1}));
}

TEST_CASE("bool: any non-zero byte becomes 1") {
  const std::string raw("\x00\x01\x02\xff\x80\x00", 6);
  auto got = Convert(Dtype("|b1"), raw, 6);
  REQUIRE(got.ok());
  CHECK(*got == std::string("\x00\x01\x01\x01\x01\x00", 6));
}

TEST_CASE("unaligned source bytes convert (no aliasing loads)") {
  std::string raw = "z";
  raw += Raw<double>({1.5, -2.25, 1e300});
  raw += Raw<int64_t>({-7, 9});
  std::string out(12, '\0');
  REQUIRE(
      ConvertElements(Dtype("<f8"), U8(raw) + 1, 3, reinterpret_cast<uint8_t*>(out.data()), "w", 0)
          .ok());
  CHECK(out == Raw<float>({1.5f, -2.25f, std::numeric_limits<float>::infinity()}));
  std::string ints(8, '\0');
  REQUIRE(ConvertElements(Dtype("<i8"), U8(raw) + 25, 2, reinterpret_cast<uint8_t*>(ints.data()),
                          "w", 0)
              .ok());
  CHECK(ints == Raw<int32_t>({-7, 9}));
}

TEST_CASE("strings: UTF-32 to UTF-8, trailing NULs stripped, embedded NULs kept") {
  struct Row {
    const char* descr;
    std::string raw;
    size_t count;
    std::string want;
  };
  using namespace std::string_literals;
  const Row rows[] = {
      {"<U3", Utf32({U"", U"a", U"é", U"😀", U"a\0b"s, U"x\0"s}, 3), 6,
       Encoded({"", "a", "\xc3\xa9", "\xf0\x9f\x98\x80", std::string("a\0b", 3), "x"})},
      {">U2", Utf32({U"é😀", U"z"}, 2, true), 2, Encoded({"\xc3\xa9\xf0\x9f\x98\x80", "z"})},
      {"<U1", Utf32({U"\U0010FFFF", U"\uFFFD"}, 1), 2,
       Encoded({"\xf4\x8f\xbf\xbf", "\xef\xbf\xbd"})},
      {"|S4", std::string("ab\0\0\0x\0\0\xff\xfe\0\0\0\0\0\0", 16), 4,
       Encoded({"ab", std::string("\0x", 2), "\xff\xfe", ""})},
      {"|S2", std::string("a\0b\0", 4), 2, Encoded({"a", "b"})},
  };
  for (const Row& r : rows) {
    INFO(std::string(r.descr));
    auto got = Strings(Dtype(r.descr), r.raw, r.count);
    REQUIRE(got.ok());
    CHECK(*got == r.want);
    auto size = EncodedStringsSize(Dtype(r.descr), U8(r.raw), r.count, "w", 0);
    REQUIRE(size.ok());
    CHECK(*size == r.want.size());
  }
}

TEST_CASE("a code point that is not a Unicode scalar value is refused naming the element") {
  struct Row {
    std::string raw;
    size_t count;
    std::string message;
  };
  const Row rows[] = {
      {Raw<uint32_t>({'o', 'k', 'a', 0xD800}), 2,
       "weight 'labels': string element 8 (flat C-order index) holds 0xD800 at character 1"},
      {Raw<uint32_t>({0xDFFF, 0}), 1,
       "weight 'labels': string element 7 (flat C-order index) holds 0xDFFF at character 0"},
      {Raw<uint32_t>({'a', 0x110000}), 1,
       "weight 'labels': string element 7 (flat C-order index) holds 0x110000 at character 1"},
  };
  for (const Row& r : rows) {
    INFO(r.message);
    const NpyDtype d = Dtype("<U2");
    std::string out = "keep";
    Status s = AppendEncodedStrings(d, U8(r.raw), r.count, out, "labels", 7);
    REQUIRE_FALSE(s.ok());
    CHECK(s.kind() == ErrorKind::kBundle);
    CHECK(s.message().rfind(r.message, 0) == 0);
    CHECK(out == "keep");  // nothing half-written
    auto size = EncodedStringsSize(d, U8(r.raw), r.count, "labels", 7);
    CHECK_FALSE(size.ok());
  }
}

TEST_CASE("dtype mapping, names and element sizes") {
  struct Row {
    const char* descr;
    OutDtype out;
    const char* name;
    size_t size;
  };
  const Row rows[] = {
      {"<f2", OutDtype::kFloat32, "float32", 4}, {">f8", OutDtype::kFloat32, "float32", 4},
      {"|i1", OutDtype::kInt32, "int32", 4},     {"<u8", OutDtype::kInt32, "int32", 4},
      {"|b1", OutDtype::kBool, "bool", 1},       {"<c16", OutDtype::kComplex64, "complex64", 8},
      {"<U5", OutDtype::kString, "string", 0},   {"|S3", OutDtype::kString, "string", 0},
  };
  for (const Row& r : rows) {
    INFO(std::string(r.descr));
    CHECK(MapDtype(Dtype(r.descr)) == r.out);
    CHECK(std::string(OutDtypeName(r.out)) == r.name);
    CHECK(OutElementSize(r.out) == r.size);
  }
}

TEST_CASE("an element size the codec cannot read is refused naming the descr") {
  auto got = Convert(Dtype("<f16"), std::string(16, '\0'), 1, "big");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().message() == "weight 'big': dtype '<f16' has no tfjs encoding here");
}

}  // namespace
}  // namespace wd
