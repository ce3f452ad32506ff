// Quantizer tests: bit-exactness against NumPy 1.24 (fixtures written by
// tests/data/make_quant_vectors.py, which also checks them against the golden
// cases), plus the behaviours the fixtures cannot name one by one.
#include "core/quantizer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/quant_fixtures.h"
#include "tests/test_util.h"

namespace wd {
namespace {

using test::Bits;
using test::FromBits;
using test::HexDouble;
using test::LoadFloats;
using test::LoadLe;
using test::QuantFixture;

TEST_CASE("FloatToHalf matches NumPy astype(float16) bit for bit on every fixture input") {
  const std::string blob = QuantFixture("float16.bin");
  const uint32_t n = LoadLe<uint32_t>(blob, 0);
  REQUIRE(blob.size() == 4 + 6 * size_t{n});
  std::vector<float> in = LoadFloats(blob, 4, n);
  size_t mismatches = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t want = LoadLe<uint16_t>(blob, 4 + 4 * size_t{n} + 2 * i);
    const uint16_t got = FloatToHalf(in[i]);
    if (got != want && ++mismatches <= 10) {
      INFO("float bits 0x" << std::hex << Bits(in[i]) << " want 0x" << want << " got 0x" << got);
      CHECK(got == want);
    }
  }
  CHECK(mismatches == 0);

  SUBCASE("FloatsToHalves writes the same halves little-endian") {
    std::vector<uint8_t> out(2 * size_t{n});
    FloatsToHalves(in.data(), n, out.data());
    CHECK(std::memcmp(out.data(), blob.data() + 4 + 4 * size_t{n}, out.size()) == 0);
  }
}

TEST_CASE("FloatToHalf rounds ties to even, keeps signed zeros and NaN payloads like NumPy") {
  struct Row {
    uint32_t in;
    uint16_t want;
    const char* what;
  };
  const Row rows[] = {
      {0x00000000, 0x0000, "+0"},
      {0x80000000, 0x8000, "-0"},
      {0x3f800000, 0x3c00, "1.0"},
      {0x3f801000, 0x3c00, "1 + half ulp: tie, lsb even -> down"},
      {0x3f803000, 0x3c02, "1 + 3 half ulps: tie, lsb odd -> up"},
      {0x3f801001, 0x3c01, "just above a tie -> up"},
      {0x477fe000, 0x7bff, "65504, largest finite half"},
      {0x477fefff, 0x7bff, "65519.99 -> 65504"},
      {0x477ff000, 0x7c00, "65520 -> +inf"},
      {0xc77ff000, 0xfc00, "-65520 -> -inf"},
      {0x7f800000, 0x7c00, "+inf"},
      {0x33800000, 0x0001, "2^-24, smallest subnormal half"},
      {0x33000000, 0x0000, "2^-25: tie with zero -> even (0)"},
      {0x33000001, 0x0001, "just above 2^-25 -> smallest subnormal"},
      {0x33c00000, 0x0002, "1.5 * 2^-24: tie, lsb odd -> up"},
      {0x38800000, 0x0400, "2^-14, smallest normal half"},
      {0x387fc000, 0x03ff, "largest subnormal half"},
      {0x387fe000, 0x0400, "rounds up from subnormal into the smallest normal"},
      {0x7fc00000, 0x7e00, "quiet NaN"},
      {0x7f800001, 0x7c01, "NaN whose payload sits below half precision stays NaN"},
      {0x7fbfe000, 0x7dff, "signalling NaN keeps its top payload bits, not quieted"},
      {0xff802000, 0xfc01, "negative NaN"},
  };
  for (const Row& r : rows) {
    INFO(r.what);
    CHECK(FloatToHalf(FromBits(r.in)) == r.want);
  }
}

TEST_CASE("HalfToFloat is exact: every half survives the round trip") {
  CHECK(HalfToFloat(0x3c00) == 1.0f);
  CHECK(HalfToFloat(0x0001) == std::ldexp(1.0f, -24));
  CHECK(HalfToFloat(0x7bff) == 65504.0f);
  CHECK(Bits(HalfToFloat(0x8000)) == 0x80000000u);
  CHECK(HalfToFloat(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(Bits(HalfToFloat(0x7c01)) == 0x7f802000u);
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const uint16_t back = FloatToHalf(HalfToFloat(static_cast<uint16_t>(h)));
    if (back != h) {
      INFO("half 0x" << std::hex << h);
      REQUIRE(back == h);
    }
  }
}

TEST_CASE("HalfOverflows is true exactly when a finite float becomes an infinite half") {
  const std::string blob = QuantFixture("float16.bin");
  const uint32_t n = LoadLe<uint32_t>(blob, 0);
  for (float f : LoadFloats(blob, 4, n)) {
    if (!std::isfinite(f)) continue;
    const bool inf_half = (FloatToHalf(f) & 0x7fffu) == 0x7c00u;
    if (HalfOverflows(f) != inf_half) {
      INFO("float bits 0x" << std::hex << Bits(f));
      CHECK(HalfOverflows(f) == inf_half);
    }
  }
}

struct AffineCase {
  std::string name;
  QuantDtype dtype;
  std::vector<float> data;
  std::string expected;  // the bytes NumPy produced
  double data_min, data_max, min, scale;
  bool float64_step;
};

std::vector<AffineCase> LoadAffineCases() {
  const std::string blob = QuantFixture("affine.bin");
  const auto index = nlohmann::json::parse(QuantFixture("affine.json"));
  std::vector<AffineCase> cases;
  for (const auto& e : index) {
    AffineCase c;
    c.name = e.at("name").get<std::string>() + "/" + e.at("dtype").get<std::string>();
    c.dtype = e.at("dtype") == "uint16" ? QuantDtype::kUint16 : QuantDtype::kUint8;
    const size_t n = e.at("count").get<size_t>();
    c.data = LoadFloats(blob, e.at("input_offset").get<size_t>(), n);
    const size_t width = c.dtype == QuantDtype::kUint16 ? 2 : 1;
    c.expected = blob.substr(e.at("output_offset").get<size_t>(), n * width);
    c.data_min = HexDouble(e.at("data_min"));
    c.data_max = HexDouble(e.at("data_max"));
    c.min = HexDouble(e.at("min"));
    c.scale = HexDouble(e.at("scale"));
    c.float64_step = e.at("float64_step").get<bool>();
    cases.push_back(std::move(c));
  }
  return cases;
}

TEST_CASE("affine uint8/uint16 match NumPy's bytes and the manifest's min/scale exactly") {
  const std::vector<AffineCase> cases = LoadAffineCases();
  REQUIRE(cases.size() > 40);
  for (const AffineCase& c : cases) {
    INFO(c.name);
    const auto [lo, hi] = std::minmax_element(c.data.begin(), c.data.end());
    REQUIRE(static_cast<double>(*lo) == c.data_min);
    REQUIRE(static_cast<double>(*hi) == c.data_max);

    const AffineParams p = ComputeAffine(c.data_min, c.data_max, c.dtype);
    CHECK(Bits(p.min) == Bits(c.min));  // bits: -0.0 must stay -0.0
    CHECK(Bits(p.scale) == Bits(c.scale));
    CHECK(p.constant == (c.data_min == c.data_max));
    CHECK(p.wide == c.float64_step);

    std::string got(c.expected.size(), '\xAA');
    QuantizeAffine(c.data.data(), c.data.size(), p, c.dtype,
                   reinterpret_cast<uint8_t*>(got.data()));
    size_t first_bad = 0;
    while (first_bad < got.size() && got[first_bad] == c.expected[first_bad]) ++first_bad;
    INFO("first differing byte " << first_bad);
    CHECK(got == c.expected);
  }
}

TEST_CASE("ComputeAffine nudges the range only when it covers zero") {
  struct Row {
    double mn, mx;
    QuantDtype dtype;
    double want_min, want_scale;
  };
  const Row rows[] = {
      // mn == 0: the reference computes (0 - mn) = +0, so min is -0.0.
      {0.0, 255.0, QuantDtype::kUint8, -0.0, 1.0},
      {-1.0, 254.0, QuantDtype::kUint8, -1.0, 1.0},
      {2.0, 257.0, QuantDtype::kUint8, 2.0, 1.0},       // all positive: no nudge
      {-257.0, -2.0, QuantDtype::kUint8, -257.0, 1.0},  // all negative: no nudge
      {-1.0, 65534.0, QuantDtype::kUint16, -1.0, 1.0},
      // zero point 127.5 rounds to even (128)
      {-0.5, 0.5, QuantDtype::kUint8, -128.0 / 255.0, 1.0 / 255.0},
  };
  for (const Row& r : rows) {
    INFO(r.mn << " .. " << r.mx);
    const AffineParams p = ComputeAffine(r.mn, r.mx, r.dtype);
    CHECK(p.min == r.want_min);
    CHECK(std::signbit(p.min) == std::signbit(r.want_min));
    CHECK(p.scale == r.want_scale);
    CHECK_FALSE(p.constant);
    CHECK(p.fmin == static_cast<float>(p.min));
    CHECK(p.fscale == static_cast<float>(p.scale));
  }
}

TEST_CASE("a constant weight quantizes to zeros with scale 1 and min = the value") {
  const AffineParams p = ComputeAffine(-3.25, -3.25, QuantDtype::kUint16);
  CHECK(p.constant);
  CHECK(p.min == -3.25);
  CHECK(p.scale == 1.0);
  const float in[3] = {-3.25f, -3.25f, -3.25f};
  uint8_t out[6] = {9, 9, 9, 9, 9, 9};
  QuantizeAffine(in, 3, p, QuantDtype::kUint16, out);
  CHECK(std::all_of(out, out + 6, [](uint8_t b) { return b == 0; }));
  CHECK(DequantizeAffine(0, p) == -3.25f);
}

TEST_CASE("uint16 codes are written little-endian") {
  const AffineParams p = ComputeAffine(0.0, 65535.0, QuantDtype::kUint16);
  const float in[2] = {258.0f, 65535.0f};
  uint8_t out[4] = {};
  QuantizeAffine(in, 2, p, QuantDtype::kUint16, out);
  CHECK(out[0] == 0x02);
  CHECK(out[1] == 0x01);
  CHECK(out[2] == 0xff);
  CHECK(out[3] == 0xff);
}

TEST_CASE("dequantizing reconstructs every value within half a step, zero exactly") {
  for (const AffineCase& c : LoadAffineCases()) {
    // Cases whose range overflows float32 are garbage in NumPy too.
    if (c.float64_step || !std::isfinite(static_cast<float>(c.data_max - c.data_min))) continue;
    if (static_cast<float>(c.scale) == 0.0f) continue;
    INFO(c.name);
    const AffineParams p = ComputeAffine(c.data_min, c.data_max, c.dtype);
    const size_t width = c.dtype == QuantDtype::kUint16 ? 2 : 1;
    for (size_t i = 0; i < c.data.size(); ++i) {
      uint32_t q = static_cast<uint8_t>(c.expected[i * width]);
      if (width == 2) q |= uint32_t{static_cast<uint8_t>(c.expected[i * width + 1])} << 8;
      const double back = DequantizeAffine(q, p);
      // Half a step, plus the float32 rounding of min, max and x in the step.
      const double slack = (std::abs(p.min) + std::abs(c.data_max) + std::abs(c.data[i])) * 2.4e-7;
      const double tolerance = p.constant ? 0.0 : p.scale * 0.5 + slack;
      if (std::abs(back - c.data[i]) > tolerance) {
        INFO("element " << i << " x=" << c.data[i] << " q=" << q << " back=" << back);
        CHECK(std::abs(back - c.data[i]) <= tolerance);
      }
      if (c.data[i] == 0.0f) CHECK(back == 0.0);
    }
  }
}

TEST_CASE("DequantizeAffine computes q * scale + min in float64, then rounds to float32") {
  AffineParams p;
  p.min = -0.9952941352245854;
  p.scale = 0.010588235481112611;
  for (uint32_t q : {0u, 1u, 94u, 200u, 255u}) {
    // volatile: two roundings, as in JS, even where the compiler would fuse.
    volatile double product = static_cast<double>(q) * p.scale;
    const double exact = product + p.min;
    CHECK(Bits(DequantizeAffine(q, p)) == Bits(static_cast<float>(exact)));
  }
  CHECK(DequantizeAffine(94, p) == 0.0f);  // the golden case's nudged zero point
}

}  // namespace
}  // namespace wd
