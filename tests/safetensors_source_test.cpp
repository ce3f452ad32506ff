// The safetensors reader on real files: names, order, dtypes, metadata, and
// every rule of the format refused with the file, the tensor and the problem.
// tests/integration/safetensors_test.py publishes such files and loads them
// with tfjs.
#include "core/safetensors_source.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/bundle.h"
#include "core/element_codec.h"
#include "tests/test_util.h"

namespace wd {
namespace {

// A safetensors file: `header` (JSON text) padded with spaces to 8 bytes,
// then `data`.
std::string File(std::string header, const std::string& data, bool pad = true) {
  while (pad && header.size() % 8 != 0) header += ' ';
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

const std::string kTwo = test::Floats({1, 2});  // 8 bytes

Result<std::unique_ptr<Bundle>> OpenFile(test::TempDir& dir, const std::string& bytes,
                                         const std::string& name = "m.safetensors") {
  test::WriteFile(dir / name, bytes);
  return Bundle::Open(dir / name);
}

std::string ErrorOf(const std::string& header, const std::string& data, bool pad = true) {
  test::TempDir dir;
  auto b = OpenFile(dir, File(header, data, pad));
  REQUIRE_FALSE(b.ok());
  const std::string m = b.status().message();
  const std::string prefix = dir / "m.safetensors";
  CHECK_MESSAGE(m.rfind(prefix, 0) == 0, m);  // names the file
  return m.substr(std::min(m.size(), prefix.size()));
}

TEST_CASE("a safetensors file: tensors in data order, dtypes and metadata") {
  test::TempDir dir;
  std::string data = kTwo + std::string("\x80\x3f\x00\x40", 4) + std::string("\x01\x00", 2);
  auto b = OpenFile(dir, File(R"({"z": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "a": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12]},
      "__metadata__": {"format": "pt"},
      "flag": {"dtype": "BOOL", "shape": [2], "data_offsets": [12, 14]}})",
                              data));
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  const auto& w = (*b)->weights();
  REQUIRE(w.size() == 3);
  CHECK(w[0].name == "z");  // data order, not name order
  CHECK(w[1].name == "a");
  CHECK(w[1].dtype.kind == SourceKind::kBFloat16);
  CHECK(MapDtype(w[1].dtype) == OutDtype::kFloat32);
  CHECK(w[2].dtype.kind == SourceKind::kBool);
  CHECK(w[0].where == dir / "m.safetensors" + ": tensor 'z'");
  auto meta = (*b)->Metadata();
  CHECK(meta["m.safetensors"]["format"] == "pt");
  auto src = (*b)->OpenData(w[1]);
  REQUIRE(src.ok());
  uint8_t buf[8];
  REQUIRE(ReadExact(**src, buf, 4, "t", 0).ok());
  float out[2];
  REQUIRE(ConvertElements(w[1].dtype, buf, 2, reinterpret_cast<uint8_t*>(out), "a", 0).ok());
  CHECK(out[0] == 1.0f);  // 0x3f80 -> 1.0
  CHECK(out[1] == 2.0f);  // 0x4000 -> 2.0
}

TEST_CASE("scalars and empty tensors") {
  test::TempDir dir;
  auto b = OpenFile(dir, File(R"({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
      "e": {"dtype": "F16", "shape": [0, 3], "data_offsets": [4, 4]}})",
                              test::Floats({7})));
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  CHECK((*b)->weights()[0].shape.empty());
  CHECK((*b)->weights()[1].element_count == 0);
}

TEST_CASE("a zero dimension anywhere makes an empty tensor, however large the others") {
  for (const char* shape : {"[0, 9223372036854775807, 9223372036854775807]",
                            "[9223372036854775807, 0, 9223372036854775807]",
                            "[9223372036854775807, 9223372036854775807, 0]"}) {
    CAPTURE(shape);
    test::TempDir dir;
    auto b = OpenFile(dir, File(std::string(R"({"e": {"dtype": "F32", "shape": )") + shape +
                                    R"(, "data_offsets": [0, 0]}})",
                                ""));
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    CHECK((*b)->weights()[0].element_count == 0);
    CHECK((*b)->weights()[0].data_bytes == 0);
  }
}

// Parsing is linear in the number of tensors: nlohmann's parse callback,
// which this once used, made 20,000 tensors take seconds and 200,000 take
// hours (a header a hostile drop can hold well within the 16 MiB cap).
TEST_CASE("a header of 100000 tensors opens: parsing is linear in the tensors") {
  std::string header = "{";
  for (int i = 0; i < 100000; ++i) {
    header += (i ? ",\"t" : "\"t") + std::to_string(i) +
              R"(":{"dtype":"F32","shape":[0],"data_offsets":[0,0]})";
  }
  header += R"(,"last":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  test::TempDir dir;
  auto b = OpenFile(dir, File(header, test::Floats({1})));
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  CHECK((*b)->weights().size() == 100001);
}

TEST_CASE("float8 and bfloat16 widen to float32 exactly") {
  NpyDtype e4{.descr = "F8_E4M3",
              .kind = SourceKind::kFloat8E4M3,
              .order = ByteOrder::kNone,
              .item_size = 1};
  NpyDtype e5{.descr = "F8_E5M2",
              .kind = SourceKind::kFloat8E5M2,
              .order = ByteOrder::kNone,
              .item_size = 1};
  const uint8_t codes[] = {0x00, 0x01, 0x08, 0x7e, 0x7f, 0x80, 0xfe, 0x38};
  float out[8];
  REQUIRE(ConvertElements(e4, codes, 8, reinterpret_cast<uint8_t*>(out), "w", 0).ok());
  CHECK(out[0] == 0.0f);
  CHECK(out[1] == std::ldexp(1.0f, -9));  // smallest subnormal
  CHECK(out[2] == std::ldexp(1.0f, -6));  // smallest normal
  CHECK(out[3] == 448.0f);                // largest
  CHECK(std::isnan(out[4]));              // S.1111.111
  CHECK(std::signbit(out[5]));            // -0
  CHECK(out[6] == -448.0f);
  CHECK(out[7] == 1.0f);
  const uint8_t e5codes[] = {0x3c, 0x7c, 0xfc, 0x7e, 0x01, 0x7b, 0x00, 0x80};
  REQUIRE(ConvertElements(e5, e5codes, 8, reinterpret_cast<uint8_t*>(out), "w", 0).ok());
  CHECK(out[0] == 1.0f);
  CHECK(out[1] == std::numeric_limits<float>::infinity());
  CHECK(out[2] == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(out[3]));
  CHECK(out[4] == std::ldexp(1.0f, -16));  // smallest subnormal
  CHECK(out[5] == 57344.0f);               // largest
}

TEST_CASE("every rule of the format is checked, naming the tensor and the problem") {
  const std::string f = R"("dtype": "F32", "shape": [2], "data_offsets": )";
  CHECK(ErrorOf(R"({"a": {)" + f + R"([0, 8]}, "a": {)" + f + "[0, 8]}}", kTwo)
            .find("the key 'a' appears twice") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {"dtype": "F7", "shape": [2], "data_offsets": [0, 8]}})", kTwo)
            .find("tensor 'a': unknown safetensors dtype 'F7'") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {"dtype": "F4", "shape": [2], "data_offsets": [0, 8]}})", kTwo)
            .find("dtype F4 cannot be published") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", kTwo)
            .find("tensor 'a': data_offsets [0, 8] hold 8 bytes but shape (3,) of F32 needs 12") !=
        std::string::npos);
  CHECK(ErrorOf(R"({"a": {)" + f + R"([0, 8]}, "b": {)" + f + "[4, 12]}}", kTwo + kTwo)
            .find("tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]") !=
        std::string::npos);
  CHECK(ErrorOf(R"({"a": {)" + f + R"([0, 8]}, "b": {)" + f + "[12, 20]}}", kTwo + kTwo + "xxxx")
            .find("bytes [8, 12) of the data buffer belong to no tensor") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {)" + f + "[0, 8]}}", kTwo + "junk")
            .find("4 trailing bytes after the last tensor") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 2],
      "data_offsets": [0, 8]}})",
                kTwo)
            .find("more elements than 64 bits can count") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", kTwo)
            .find("shape holds -2, not a non-negative integer") != std::string::npos);
  std::string rank65 = "[1";
  for (int i = 0; i < 64; ++i) rank65 += ",1";
  CHECK(ErrorOf(R"({"a": {"dtype": "F32", "shape": )" + rank65 + R"(], "data_offsets": [0, 4]}})",
                test::Floats({1}))
            .find("shape has 65 dimensions, more than 64") != std::string::npos);
  CHECK(ErrorOf(R"({"a": {)" + f + R"([0, 8], "extra": 1}})", kTwo).find("unknown key 'extra'") !=
        std::string::npos);
  CHECK(ErrorOf(R"({"__metadata__": {"n": 1}, "a": {)" + f + "[0, 8]}}", kTwo)
            .find("__metadata__ 'n' is 1, not a string") != std::string::npos);
  CHECK(ErrorOf(R"( {"a": {)" + f + "[0, 8]}}", kTwo).find("does not start with '{'") !=
        std::string::npos);
  CHECK(ErrorOf(std::string(R"({"a": {)") + f + "[0, 8]}}\n", kTwo, false)
            .find("followed only by space padding") != std::string::npos);
  CHECK(ErrorOf("{\"\xff\": 1}", kTwo).find("not valid JSON") != std::string::npos);
  // A length that stops inside the JSON: the common mistake, said as such.
  CHECK(ErrorOf(R"({"a": {)" + f + "[0, 8", kTwo, false).find("its JSON is cut short") !=
        std::string::npos);
}

TEST_CASE("a file cut short is incomplete, not bad: it may still be arriving") {
  test::TempDir dir;
  std::string whole =
      File(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwo);
  for (size_t cut : {size_t{0}, size_t{5}, size_t{20}, whole.size() - 1}) {
    CAPTURE(cut);
    auto b = OpenFile(dir, whole.substr(0, cut));
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().kind() == ErrorKind::kIncomplete);
  }
  std::string huge(8, '\0');
  huge[3] = 0x10;  // 256 MiB of header: over the cap, refused before reading it
  auto b = OpenFile(dir, huge + "{}");
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().kind() == ErrorKind::kBundle);
  CHECK(b.status().message().find("over weightdrop's limit") != std::string::npos);
}

TEST_CASE("a sharded checkpoint's index must agree with its shards") {
  const std::string a =
      File(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwo);
  const std::string b =
      File(R"({"y": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwo);
  auto open = [&](const std::string& index) {
    test::TempDir dir;
    test::WriteFile(dir / "ck/model-00001-of-00002.safetensors", a);
    test::WriteFile(dir / "ck/model-00002-of-00002.safetensors", b);
    test::WriteFile(dir / "ck/model.safetensors.index.json", index);
    auto r = Bundle::Open(dir.path());
    return r.ok() ? std::string("ok") : r.status().message();
  };
  const std::string good =
      R"({"metadata": {"total_size": 16}, "weight_map": {"ck/x": "model-00001-of-00002.safetensors",
      "ck/y": "model-00002-of-00002.safetensors"}})";
  // Tensor names in a folder carry the folder, as .npy names do; the index
  // names them as its shards do.
  CHECK(open(good).find("weight_map puts tensor 'ck/x'") != std::string::npos);
  const std::string ok = R"({"weight_map": {"x": "model-00001-of-00002.safetensors",
      "y": "model-00002-of-00002.safetensors"}})";
  CHECK(open(ok) == "ok");
  CHECK(open(R"({"weight_map": {"x": "model-00002-of-00002.safetensors",
      "y": "model-00002-of-00002.safetensors"}})")
            .find("puts tensor 'x' in model-00002-of-00002.safetensors, but it is in") !=
        std::string::npos);
  CHECK(open(R"({"weight_map": {"x": "model-00001-of-00002.safetensors",
      "y": "model-00003-of-00002.safetensors"}})")
            .find("which is not a .safetensors file beside it") != std::string::npos);
  CHECK(open(R"({"weight_map": {"x": "model-00001-of-00002.safetensors"}})")
            .find("holds tensor 'y', which") != std::string::npos);
  CHECK(open("{}").find("has no weight_map") != std::string::npos);
}

TEST_CASE("the same tensor in two shards names both") {
  test::TempDir dir;
  const std::string x =
      File(R"({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", kTwo);
  test::WriteFile(dir / "a.safetensors", x);
  test::WriteFile(dir / "b.safetensors", x);
  auto r = Bundle::Open(dir.path());
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("duplicate weight name 'x': from " + dir / "a.safetensors" +
                                  ": tensor 'x' and from " + dir / "b.safetensors") !=
        std::string::npos);
}

}  // namespace
}  // namespace wd
