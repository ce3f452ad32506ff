// Kernel-path tests: the AVX2+F16C kernels write exactly the bytes the scalar
// reference writes (and NumPy's fixtures hold), and the scans (non-finite,
// min/max, half overflow) return its results, each path forced in turn with
// ScopedKernelPath, over structured bit patterns, edge values, random data,
// misaligned buffers and every tail length. WD_EXHAUSTIVE=1 adds all 2^32
// float32 inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/cpu_kernels.h"
#include "core/quantizer.h"
#include "tests/quant_fixtures.h"
#include "tests/test_util.h"

namespace wd {
namespace {

using test::Bits;
using test::FromBits;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Quiet and signalling NaNs of both signs, payloads high, low and in between
// (F16C would quiet the signalling ones; NumPy keeps them).
std::vector<float> NaNs() {
  std::vector<float> v;
  for (uint32_t sig : {0x400000u, 0x400001u, 0x7fffffu, 0x000001u, 0x001fffu, 0x002000u, 0x3fffffu,
                       0x200000u, 0x155555u, 0x6aaaaau}) {
    v.push_back(FromBits(0x7f800000u | sig));
    v.push_back(FromBits(0xff800000u | sig));
  }
  return v;
}

// A conversion under test: n floats in, width * n bytes out. For affine
// kernels `p` holds the parameters (the inputs are chosen around them).
struct Kernel {
  std::string name;
  size_t width;
  std::function<void(const float*, size_t, uint8_t*)> run;
  AffineParams p;
};

Kernel HalfKernel() { return {"float16", 2, FloatsToHalves, {}}; }

Kernel AffineKernel(const std::string& name, const AffineParams& p, QuantDtype q) {
  const size_t width = q == QuantDtype::kUint16 ? 2 : 1;
  return {name + (width == 2 ? "/uint16" : "/uint8"), width,
          [p, q](const float* s, size_t n, uint8_t* d) { QuantizeAffine(s, n, p, q, d); }, p};
}

// The vector paths this CPU can run (none, with a message, without AVX2).
std::vector<KernelPath> VectorPathsToTest() {
  if (CpuHasAvx2F16c()) return {KernelPath::kAvx2};
  MESSAGE("this CPU lacks AVX2/F16C: only the scalar path is tested");
  return {};
}

std::vector<uint8_t> RunOn(KernelPath path, const Kernel& k, const std::vector<float>& in) {
  ScopedKernelPath forced(path);
  REQUIRE(ActiveKernelPath() == path);
  std::vector<uint8_t> out(in.size() * k.width, 0xAA);
  k.run(in.data(), in.size(), out.data());
  return out;
}

// Requires `path` to write the scalar path's bytes for `in`; names the first
// differing element otherwise.
void CheckSameAsScalar(const Kernel& k, KernelPath path, const std::vector<float>& in) {
  const std::vector<uint8_t> want = RunOn(KernelPath::kScalar, k, in);
  const std::vector<uint8_t> got = RunOn(path, k, in);
  if (got != want) {
    const size_t byte = std::mismatch(want.begin(), want.end(), got.begin()).first - want.begin();
    const size_t i = byte / k.width;
    INFO(k.name << " on " << KernelPathName(path) << ": element " << i << " of " << in.size()
                << ", float bits 0x" << std::hex << Bits(in[i]) << ", byte 0x" << int{want[byte]}
                << " scalar vs 0x" << int{got[byte]});
    CHECK(got == want);
  } else {
    CHECK(got.size() == in.size() * k.width);
  }
}

// Every float16 rounding case: all signs and exponents with the significand's
// dropped 13 bits at 0, just above 0, below/at/above the tie and all ones,
// under several kept patterns (odd and even lsb; Inf and NaN at exponent 255).
std::vector<float> StructuredHalfSweep() {
  std::vector<float> v;
  for (uint32_t sign : {0u, 1u}) {
    for (uint32_t exp = 0; exp < 256; ++exp) {
      for (uint32_t high : {0x000u, 0x001u, 0x155u, 0x1ffu, 0x200u, 0x2aau, 0x3feu, 0x3ffu}) {
        for (uint32_t low : {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu}) {
          v.push_back(FromBits(sign << 31 | exp << 23 | high << 13 | low));
        }
      }
    }
  }
  return v;
}

// Around the half subnormal range (and its neighbours) the rounding point moves
// with the exponent: walk a single bit, a run of ones and bit-plus-one through
// every significand position there.
std::vector<float> SubnormalBoundarySweep() {
  std::vector<float> v;
  for (uint32_t exp = 100; exp <= 115; ++exp) {
    for (uint32_t k = 0; k < 23; ++k) {
      for (uint32_t sig : {1u << k, (1u << k) - 1, (1u << k) | 1u, (2u << k) - 1}) {
        v.push_back(FromBits(exp << 23 | (sig & 0x7fffffu)));
        v.push_back(-FromBits(exp << 23 | (sig & 0x7fffffu)));
      }
    }
  }
  return v;
}

// Every finite half, the exact midpoint to the next one, and one float32 ulp
// either side of that midpoint, both signs.
std::vector<float> HalfMidpoints() {
  std::vector<float> v;
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = HalfToFloat(static_cast<uint16_t>(h));
    const float mid = static_cast<float>(
        (double{a} + double{HalfToFloat(static_cast<uint16_t>(h + 1))}) / 2);  // exact
    for (float f : {a, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, kInf)}) {
      v.push_back(f);
      v.push_back(-f);
    }
  }
  return v;
}

std::vector<float> RandomBits(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (float& f : v) f = FromBits(static_cast<uint32_t>(rng()));
  return v;
}

// NaNs at every position of an otherwise ordinary block of 8, so blocks with
// and without NaNs sit side by side.
std::vector<float> NaNInEveryLane() {
  std::vector<float> v;
  for (float nan : NaNs()) {
    for (size_t lane = 0; lane < 8; ++lane) {
      for (size_t i = 0; i < 8; ++i) v.push_back(i == lane ? nan : 1.0f + 0.37f * float(i));
    }
  }
  return v;
}

TEST_CASE("float16 kernels write the scalar path's bytes for every rounding case") {
  struct Row {
    const char* what;
    std::vector<float> in;
  };
  std::vector<float> shuffled = StructuredHalfSweep();
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  const Row rows[] = {
      {"sign x exponent x significand sweep", StructuredHalfSweep()},
      {"the same sweep shuffled (NaNs inside ordinary blocks)", shuffled},
      {"subnormal-boundary bit walk", SubnormalBoundarySweep()},
      {"every half and the midpoints between halves", HalfMidpoints()},
      {"NaN in each lane of a block", NaNInEveryLane()},
      {"random bit patterns", RandomBits(1 << 18, 1)},
  };
  for (KernelPath path : VectorPathsToTest()) {
    for (const Row& r : rows) {
      INFO(r.what);
      CheckSameAsScalar(HalfKernel(), path, r.in);
    }
  }
}

// The affine parameter sets: ComputeAffine over ranges with zero inside, at an
// end, all positive, all negative, tiny and huge; then hand-made ones no
// weight produces (inverted bounds, NaN operands, a scale of 0) to pin the
// kernels to the scalar formula itself rather than to its usual inputs.
std::vector<Kernel> AffineKernels() {
  struct Range {
    const char* what;
    double mn, mx;
  };
  const Range ranges[] = {
      {"[-1, 1]", -1.0, 1.0},
      {"[0, 1] (min -0.0)", 0.0, 1.0},
      {"[-0.5, 0.5] (zero point ties)", -0.5, 0.5},
      {"[0, qmax] (scale 1: exact .5 ties)", 0.0, 0.0},  // mx filled in per dtype
      {"[2, 257] all positive", 2.0, 257.0},
      {"[-257, -2] all negative", -257.0, -2.0},
      {"[-0.1234, 5.678]", -0.1234, 5.678},
      {"[-3e-38, 1e-38] subnormal scale", -3e-38, 1e-38},
      {"[0, 1e-44] scale rounds to 0 in float32", 0.0, 1e-44},
      {"[-1e30, 5e29]", -1e30, 5e29},
      {"[-3e38, 3e38] x - min overflows", -3e38, 3e38},
  };
  std::vector<Kernel> ks;
  for (QuantDtype q : {QuantDtype::kUint8, QuantDtype::kUint16}) {
    for (const Range& r : ranges) {
      const double qmax = q == QuantDtype::kUint16 ? 65535.0 : 255.0;
      const double mx = r.mx == 0.0 && r.mn == 0.0 ? qmax : r.mx;
      const AffineParams p = ComputeAffine(r.mn, mx, q);
      REQUIRE_FALSE(p.wide);  // else the float64 step runs, on no vector path
      REQUIRE_FALSE(p.constant);
      ks.push_back(AffineKernel(r.what, p, q));
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    struct HandMade {
      const char* what;
      float lo, hi, scale;
    };
    const HandMade odd[] = {
        {"inverted bounds (t < 0)", 1.0f, -1.0f, 0.0137f},
        {"NaN min", nan, 1.0f, 0.01f},
        {"NaN max", -1.0f, nan, 0.01f},
        {"NaN scale", -1.0f, 1.0f, nan},
        {"negative scale", -1.0f, 1.0f, -2.0f / 255},
        {"scale 0", -1.0f, 1.0f, 0.0f},
    };
    for (const HandMade& h : odd) {
      AffineParams p;
      p.fmin = h.lo;
      p.fmax = h.hi;
      p.fscale = h.scale;
      ks.push_back(AffineKernel(h.what, p, q));
    }
  }
  return ks;
}

// Values at, just inside and just outside the clip bounds, near-ties on a
// spread of steps, specials (signed zeros, subnormals, extremes, Inf, NaN),
// uniform values over the range plus a margin, and random bit patterns.
std::vector<float> AffineInputs(float lo, float hi, float scale, uint32_t seed) {
  std::vector<float> v = NaNs();
  for (float b : {lo, hi}) {
    v.insert(v.end(), {b, std::nextafter(b, -kInf), std::nextafter(b, kInf)});
  }
  const float specials[] = {0.0f,    -0.0f,    1e-45f, -1e-45f, 1.17549435e-38f, -1.17549435e-38f,
                            3.4e38f, -3.4e38f, kInf,   -kInf};
  v.insert(v.end(), std::begin(specials), std::end(specials));
  for (int k = 0; k < 300; k += 3) {
    const float tie = lo + (static_cast<float>(k) + 0.5f) * scale;
    v.insert(v.end(), {tie, std::nextafter(tie, -kInf), std::nextafter(tie, kInf)});
  }
  std::mt19937 rng(seed);
  const double span = static_cast<double>(hi) - lo;
  std::uniform_real_distribution<double> around(lo - span / 4, hi + span / 4);
  for (int i = 0; i < 4096; ++i) v.push_back(static_cast<float>(around(rng)));
  const std::vector<float> junk = RandomBits(1024, seed + 1);
  v.insert(v.end(), junk.begin(), junk.end());
  std::vector<float> shuffled = v;
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  v.insert(v.end(), shuffled.begin(), shuffled.end());
  return v;
}

TEST_CASE("affine uint8/uint16 kernels write the scalar path's bytes on edges and random data") {
  const std::vector<Kernel> kernels = AffineKernels();
  for (KernelPath path : VectorPathsToTest()) {
    uint32_t seed = 100;
    for (const Kernel& k : kernels) {
      CheckSameAsScalar(k, path, AffineInputs(k.p.fmin, k.p.fmax, k.p.fscale, ++seed));
    }
  }
}

TEST_CASE("every path rounds ties to even, clips, and sends NaN to the low bound") {
  struct Row {
    float x;
    uint32_t want;
  };
  // [0, 255] / [0, 65535]: min -0.0, scale 1, so x - min is exact.
  const Row u8[] = {{2.5f, 2},  {3.5f, 4},     {254.5f, 254}, {2.4999998f, 2}, {2.5000002f, 3},
                    {-5.0f, 0}, {300.0f, 255}, {kInf, 255},   {-kInf, 0},      {NaNs()[0], 0},
                    {-0.0f, 0}, {1e-45f, 0},   {0.5f, 0},     {1.5f, 2},       {255.0f, 255}};
  const Row u16[] = {{65534.5f, 65534}, {65533.5f, 65534}, {1e9f, 65535}, {-1.0f, 0},
                     {NaNs()[3], 0},    {258.0f, 258},     {0.5f, 0},     {32767.5f, 32768}};
  std::vector<KernelPath> paths = VectorPathsToTest();
  paths.push_back(KernelPath::kScalar);
  for (KernelPath path : paths) {
    ScopedKernelPath forced(path);
    for (QuantDtype q : {QuantDtype::kUint8, QuantDtype::kUint16}) {
      const bool two_bytes = q == QuantDtype::kUint16;
      const AffineParams p = ComputeAffine(0.0, two_bytes ? 65535.0 : 255.0, q);
      std::vector<float> in;
      std::vector<uint32_t> want;
      for (const Row& r : two_bytes ? std::vector<Row>(std::begin(u16), std::end(u16))
                                    : std::vector<Row>(std::begin(u8), std::end(u8))) {
        in.push_back(r.x);
        want.push_back(r.want);
      }
      for (size_t i = 0, rows = in.size(); i < rows; ++i) {  // twice: whole vector blocks
        in.push_back(in[i]);
        want.push_back(want[i]);
      }
      std::vector<uint8_t> out(in.size() * (two_bytes ? 2 : 1));
      QuantizeAffine(in.data(), in.size(), p, q, out.data());
      for (size_t i = 0; i < in.size(); ++i) {
        const uint32_t got = two_bytes ? out[2 * i] | out[2 * i + 1] << 8 : out[i];
        INFO(KernelPathName(path) << (two_bytes ? " uint16" : " uint8") << " x=" << in[i]);
        CHECK(got == want[i]);
      }
    }
  }
}

TEST_CASE("kernels match the scalar path at every alignment and tail length, no byte beyond") {
  // A mix of ordinary values, ties, NaNs and out-of-range values.
  std::vector<float> pool = AffineInputs(-1.0f, 1.0f, 2.0f / 255, 9);
  pool.resize(48);
  const std::vector<float> nans = NaNs();
  pool[5] = nans[4];
  pool[20] = nans[1];
  pool[33] = 70000.0f;
  const AffineParams p8 = ComputeAffine(-1.0, 1.0, QuantDtype::kUint8);
  const AffineParams p16 = ComputeAffine(-1.0, 1.0, QuantDtype::kUint16);
  const Kernel kernels[] = {HalfKernel(), AffineKernel("[-1, 1]", p8, QuantDtype::kUint8),
                            AffineKernel("[-1, 1]", p16, QuantDtype::kUint16)};
  constexpr size_t kGuard = 16;
  for (KernelPath path : VectorPathsToTest()) {
    for (const Kernel& k : kernels) {
      for (size_t src_off = 0; src_off < 8; ++src_off) {
        for (size_t dst_off = 0; dst_off < 4; ++dst_off) {
          for (size_t n = 0; n <= 40; ++n) {
            std::vector<float> src(src_off + n);
            std::copy_n(pool.begin(), n, src.begin() + static_cast<std::ptrdiff_t>(src_off));
            auto run = [&](KernelPath on) {
              ScopedKernelPath forced(on);
              std::vector<uint8_t> dst(kGuard + dst_off + n * k.width + kGuard, 0xAA);
              k.run(src.data() + src_off, n, dst.data() + kGuard + dst_off);
              return dst;
            };
            const std::vector<uint8_t> want = run(KernelPath::kScalar);
            const std::vector<uint8_t> got = run(path);
            if (got != want) {
              INFO(k.name << " src+" << src_off << " dst+" << dst_off << " n=" << n);
              CHECK(got == want);
            }
            const size_t end = kGuard + dst_off + n * k.width;
            const bool guards_intact =
                std::all_of(got.begin(), got.begin() + kGuard + dst_off,
                            [](uint8_t b) { return b == 0xAA; }) &&
                std::all_of(got.begin() + end, got.end(), [](uint8_t b) { return b == 0xAA; });
            if (!guards_intact) {
              INFO(k.name << " src+" << src_off << " dst+" << dst_off << " n=" << n);
              CHECK(guards_intact);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("every path reproduces NumPy's fixture bytes for float16 and affine") {
  const std::string halves = test::QuantFixture("float16.bin");
  uint32_t count;
  std::memcpy(&count, halves.data(), 4);
  const std::vector<float> half_in = test::LoadFloats(halves, 4, count);
  const std::string half_want = halves.substr(4 + 4 * size_t{count}, 2 * size_t{count});
  const std::string blob = test::QuantFixture("affine.bin");
  const auto index = nlohmann::json::parse(test::QuantFixture("affine.json"));
  REQUIRE(index.size() > 40);

  std::vector<KernelPath> paths = VectorPathsToTest();
  paths.push_back(KernelPath::kScalar);
  for (KernelPath path : paths) {
    ScopedKernelPath forced(path);
    INFO(KernelPathName(path));
    std::string got(half_want.size(), '\0');
    FloatsToHalves(half_in.data(), count, reinterpret_cast<uint8_t*>(got.data()));
    CHECK(got == half_want);
    for (const auto& e : index) {
      const QuantDtype q = e.at("dtype") == "uint16" ? QuantDtype::kUint16 : QuantDtype::kUint8;
      const size_t n = e.at("count").get<size_t>(), width = q == QuantDtype::kUint16 ? 2 : 1;
      const std::vector<float> in = test::LoadFloats(blob, e.at("input_offset").get<size_t>(), n);
      const AffineParams p =
          ComputeAffine(test::HexDouble(e.at("data_min")), test::HexDouble(e.at("data_max")), q);
      std::string out(n * width, '\xAA');
      QuantizeAffine(in.data(), n, p, q, reinterpret_cast<uint8_t*>(out.data()));
      INFO(e.at("name").get<std::string>() << "/" << e.at("dtype").get<std::string>());
      CHECK(out == blob.substr(e.at("output_offset").get<size_t>(), n * width));
    }
  }
}

TEST_CASE("WEIGHTDROP_KERNELS picks the kernel path, never beyond what the CPU has") {
  const KernelPath best = CpuHasAvx2F16c() ? KernelPath::kAvx2 : KernelPath::kScalar;
  struct Row {
    const char* value;  // nullptr: unset
    KernelPath want;
  };
  const Row rows[] = {
      {nullptr, best}, {"auto", best}, {"", best}, {"avx2", best}, {"scalar", KernelPath::kScalar},
      {"sse9", best}};
  for (const Row& r : rows) {
    INFO("WEIGHTDROP_KERNELS=" << (r.value ? r.value : "(unset)"));
    test::ScopedEnv env("WEIGHTDROP_KERNELS", r.value);
    CHECK(KernelPathFromEnvironment() == r.want);
  }
  CHECK(std::string(KernelPathName(KernelPath::kScalar)) == "scalar");
  CHECK(std::string(KernelPathName(KernelPath::kAvx2)) == "avx2");
}

TEST_CASE("ScopedKernelPath forces a path while alive and restores the previous one") {
  const KernelPath before = ActiveKernelPath();
  const KernelPath best = CpuHasAvx2F16c() ? KernelPath::kAvx2 : KernelPath::kScalar;
  {
    ScopedKernelPath outer(KernelPath::kScalar);
    CHECK(ActiveKernelPath() == KernelPath::kScalar);
    {
      ScopedKernelPath inner(KernelPath::kAvx2);
      CHECK(ActiveKernelPath() == best);  // capped on a CPU without AVX2
    }
    CHECK(ActiveKernelPath() == KernelPath::kScalar);
  }
  CHECK(ActiveKernelPath() == before);
}

// The scans' results on one path: AnyNonFinite, MinMaxFinite's bits (folded
// into mn0/mx0) and AnyHalfOverflow. MinMaxFinite is skipped (0) on
// non-finite input, which it does not accept.
struct ScanResult {
  bool non_finite, overflow;
  uint32_t mn, mx;
  bool operator==(const ScanResult&) const = default;
};

ScanResult ScanOn(KernelPath path, const float* f, size_t n, float mn0 = kInf, float mx0 = -kInf) {
  ScopedKernelPath forced(path);
  REQUIRE(ActiveKernelPath() == path);
  ScanResult r{AnyNonFinite(f, n), AnyHalfOverflow(f, n), 0, 0};
  if (!r.non_finite) {
    float mn = mn0, mx = mx0;
    MinMaxFinite(f, n, mn, mx);
    r.mn = Bits(mn);
    r.mx = Bits(mx);
  }
  return r;
}

// Requires every vector path to scan `f` exactly as the scalar path does.
void CheckScansMatchScalar(const std::string& what, const float* f, size_t n, float mn0 = kInf,
                           float mx0 = -kInf) {
  const ScanResult want = ScanOn(KernelPath::kScalar, f, n, mn0, mx0);
  for (KernelPath path : VectorPathsToTest()) {
    const ScanResult got = ScanOn(path, f, n, mn0, mx0);
    if (!(got == want)) {
      INFO(what << " n=" << n << " on " << KernelPathName(path) << std::hex << ": non-finite "
                << want.non_finite << "/" << got.non_finite << ", overflow " << want.overflow << "/"
                << got.overflow << ", min 0x" << want.mn << "/0x" << got.mn << ", max 0x" << want.mx
                << "/0x" << got.mx << " (scalar/vector)");
      CHECK(got == want);
    }
  }
}

std::vector<float> RandomFinite(size_t n, uint32_t seed) {
  std::vector<float> v = RandomBits(n, seed);
  for (float& f : v) {
    if (!std::isfinite(f)) f = FromBits(Bits(f) & 0xff7fffffu);  // exponent 254
  }
  return v;
}

std::vector<float> RandomUniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// Signed zeros only, or mixed with values of one sign, so the result is a
// zero whose sign depends on which lane saw which zero first.
std::vector<float> RandomZeros(size_t n, float other, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (float& f : v) {
    const uint32_t r = rng() % 5;
    f = r < 2 ? 0.0f : r < 4 ? -0.0f : other;
  }
  return v;
}

TEST_CASE("scans give the scalar path's results at every length, alignment and start value") {
  struct Row {
    const char* what;
    std::vector<float> pool;
  };
  const Row rows[] = {
      {"random finite bit patterns", RandomFinite(80, 11)},
      {"uniform in [-1000, 1000]", RandomUniform(80, -1000.0f, 1000.0f, 12)},
      {"uniform in [-70000, 70000]", RandomUniform(80, -70000.0f, 70000.0f, 13)},
      {"signed zeros", RandomZeros(80, 0.0f, 14)},
      {"signed zeros and positives", RandomZeros(80, 2.5f, 15)},
      {"signed zeros and negatives", RandomZeros(80, -2.5f, 16)},
      {"all +0.0", std::vector<float>(80, 0.0f)},
      {"all -0.0", std::vector<float>(80, -0.0f)},
  };
  const float starts[][2] = {{kInf, -kInf}, {0.0f, 0.0f},  {-0.0f, -0.0f},
                             {0.0f, -0.0f}, {-0.0f, 0.0f}, {1.0f, -1.0f}};
  for (const Row& r : rows) {
    for (size_t off = 0; off < 8; ++off) {
      for (size_t n = 0; n <= 70; ++n) {
        for (const auto& s : starts) {
          CheckScansMatchScalar(r.what + (" +" + std::to_string(off)), r.pool.data() + off, n, s[0],
                                s[1]);
        }
      }
    }
  }
  const std::vector<float> big = RandomFinite(1 << 16, 17);
  CheckScansMatchScalar("65536 random finite", big.data(), big.size());
  const std::vector<float> zeros = RandomZeros(1 << 16, 0.0f, 18);
  CheckScansMatchScalar("65536 signed zeros", zeros.data(), zeros.size());
}

TEST_CASE("MinMaxFinite: the first zero a lane sees wins, lanes fold in order, on every path") {
  struct Row {
    const char* what;
    size_t n, minus_at;  // all +0.0 but element minus_at (n: none) is -0.0
    float mn0, mx0;
    float want_mn, want_mx;
  };
  const Row rows[] = {
      {"-0.0 first in lane 0", 32, 0, kInf, -kInf, -0.0f, -0.0f},
      {"-0.0 first in lane 1: lane 0's +0.0 folds first", 32, 1, kInf, -kInf, 0.0f, 0.0f},
      {"-0.0 second in lane 0", 32, 16, kInf, -kInf, 0.0f, 0.0f},
      {"short array: all elements fold into lane 0, -0.0 first", 5, 0, kInf, -kInf, -0.0f, -0.0f},
      {"short array: all elements fold into lane 0, +0.0 first", 5, 1, kInf, -kInf, 0.0f, 0.0f},
      {"-0.0 in the tail after lane 0's +0.0", 20, 16, kInf, -kInf, 0.0f, 0.0f},
      {"start values win over equal zeros", 32, 32, -0.0f, -0.0f, -0.0f, -0.0f},
      {"no elements: start values unchanged", 0, 0, 0.0f, -0.0f, 0.0f, -0.0f},
  };
  std::vector<KernelPath> paths = VectorPathsToTest();
  paths.push_back(KernelPath::kScalar);
  for (KernelPath path : paths) {
    ScopedKernelPath forced(path);
    for (const Row& r : rows) {
      std::vector<float> f(r.n, 0.0f);
      if (r.minus_at < r.n) f[r.minus_at] = -0.0f;
      float mn = r.mn0, mx = r.mx0;
      MinMaxFinite(f.data(), f.size(), mn, mx);
      INFO(KernelPathName(path) << ": " << r.what);
      CHECK(Bits(mn) == Bits(r.want_mn));
      CHECK(Bits(mx) == Bits(r.want_mx));
    }
  }
}

TEST_CASE("AnyNonFinite finds a NaN or Inf at every position on every path") {
  std::vector<float> specials = {kInf, -kInf};
  const std::vector<float> nans = NaNs();
  specials.insert(specials.end(), nans.begin(), nans.end());
  const std::vector<float> finite = {std::numeric_limits<float>::max(),
                                     -std::numeric_limits<float>::max(), 1e-45f, -0.0f, 65520.0f};
  std::vector<KernelPath> paths = VectorPathsToTest();
  paths.push_back(KernelPath::kScalar);
  for (KernelPath path : paths) {
    ScopedKernelPath forced(path);
    for (size_t off = 0; off < 3; ++off) {
      std::vector<float> base = RandomFinite(off + 40, 19);
      for (size_t at = 0; at < 40; ++at) {
        for (float x : specials) {
          std::vector<float> f = base;
          f[off + at] = x;
          INFO(KernelPathName(path)
               << " +" << off << ": bits 0x" << std::hex << Bits(x) << std::dec << " at " << at);
          CHECK(AnyNonFinite(f.data() + off, 40));
        }
        for (float x : finite) {
          std::vector<float> f = base;
          f[off + at] = x;
          INFO(KernelPathName(path) << " +" << off << ": " << x << " at " << at);
          CHECK_FALSE(AnyNonFinite(f.data() + off, 40));
        }
      }
    }
  }
}

TEST_CASE("AnyHalfOverflow is true for finite |x| >= 65520 only, at every position") {
  struct Row {
    float x;
    bool want;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float below = std::nextafter(65520.0f, 0.0f);
  const Row rows[] = {
      {65519.99f, false},
      {below, false},
      {-below, false},
      {65520.0f, true},
      {-65520.0f, true},
      {std::nextafter(65520.0f, kInf), true},
      {1e5f, true},
      {std::numeric_limits<float>::max(), true},
      {-std::numeric_limits<float>::max(), true},
      {kInf, false},  // Inf and NaN pass through to the half as themselves
      {-kInf, false},
      {nan, false},
      {-nan, false},
      {NaNs()[3], false},
      {65504.0f, false},
      {0.0f, false},
  };
  std::vector<KernelPath> paths = VectorPathsToTest();
  paths.push_back(KernelPath::kScalar);
  for (KernelPath path : paths) {
    ScopedKernelPath forced(path);
    for (const Row& r : rows) {
      CHECK(HalfOverflows(r.x) == r.want);  // the element-wise rule itself
      for (size_t n : {1, 7, 8, 9, 16, 40}) {
        for (size_t at = 0; at < n; ++at) {
          std::vector<float> f = RandomUniform(n + 1, -65504.0f, 65504.0f, 20);
          f[1 + at] = r.x;
          INFO(KernelPathName(path) << ": " << r.x << " (bits 0x" << std::hex << Bits(r.x)
                                    << std::dec << ") at " << at << " of " << n);
          CHECK(AnyHalfOverflow(f.data() + 1, n) == r.want);
        }
      }
    }
  }
}

// Runs `k` over all 2^32 float32 bit patterns, in chunks, on the scalar path
// and on every vector path, and requires identical bytes.
void CheckAllInputsSameAsScalar(const Kernel& k) {
  constexpr size_t kChunk = size_t{1} << 22;
  std::vector<float> in(kChunk);
  std::vector<uint8_t> want(k.width * kChunk), got(k.width * kChunk);
  for (KernelPath path : VectorPathsToTest()) {
    uint64_t mismatches = 0;
    for (uint64_t base = 0; base < (uint64_t{1} << 32); base += kChunk) {
      for (size_t i = 0; i < kChunk; ++i) in[i] = FromBits(static_cast<uint32_t>(base + i));
      {
        ScopedKernelPath forced(KernelPath::kScalar);
        k.run(in.data(), kChunk, want.data());
      }
      {
        ScopedKernelPath forced(path);
        k.run(in.data(), kChunk, got.data());
      }
      for (size_t i = 0; got != want && i < kChunk; ++i) {
        const bool same = std::memcmp(&got[k.width * i], &want[k.width * i], k.width) == 0;
        if (!same && ++mismatches <= 10) {
          INFO(k.name << " on " << KernelPathName(path) << ": float bits 0x" << std::hex
                      << base + i);
          CHECK(same);
        }
      }
    }
    CHECK(mismatches == 0);
  }
}

// Tens of seconds optimised, far more under sanitizers: only on request.
bool Exhaustive() { return std::getenv("WD_EXHAUSTIVE") != nullptr; }

TEST_CASE("float16 kernels match the scalar path on all 2^32 inputs (WD_EXHAUSTIVE=1)" *
          doctest::skip(!Exhaustive())) {
  CheckAllInputsSameAsScalar(HalfKernel());
}

TEST_CASE("affine kernels match the scalar path on all 2^32 inputs (WD_EXHAUSTIVE=1)" *
          doctest::skip(!Exhaustive())) {
  const AffineParams p8 = ComputeAffine(-1.0, 1.0, QuantDtype::kUint8);
  const AffineParams p16 = ComputeAffine(-0.1234, 5.678, QuantDtype::kUint16);
  CheckAllInputsSameAsScalar(AffineKernel("[-1, 1]", p8, QuantDtype::kUint8));
  CheckAllInputsSameAsScalar(AffineKernel("[-0.1234, 5.678]", p16, QuantDtype::kUint16));
}

}  // namespace
}  // namespace wd
