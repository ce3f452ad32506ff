#include "core/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu_kernels.h"
#include "core/quantizer_kernels.h"

// Every product-then-sum below must round twice, as NumPy and tfjs do: never
// let the compiler contract it into one fused multiply-add.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace wd {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float BitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Rounds `sig` (already holding 13 extra low bits) to nearest, ties to even,
// and drops the extra bits. `sticky` says whether bits below those 13 were
// shifted out earlier (they break a tie upwards).
uint32_t RoundHalfSig(uint32_t sig, bool sticky) {
  const bool tie_to_even_down = (sig & 0x3fffu) == 0x1000u && !sticky;
  if (!tie_to_even_down) sig += 0x1000u;
  return sig >> 13;
}

// NumPy's largest magnitude that value-based casting still treats as float32
// (min_scalar_type: |v| < 3.4e38); beyond it the element step runs in float64.
constexpr double kNumpyFloat32Limit = 3.4e38;

bool FitsNumpyFloat32(double v) { return v > -kNumpyFloat32Limit && v < kNumpyFloat32Limit; }

// NumPy's astype(uint8/uint16) of a rounded float is a C cast, which on x86-64
// converts to int32 (out-of-range and NaN give INT32_MIN) and keeps the low bits.
template <typename F>
uint32_t CastLikeNumpy(F q) {
  const bool fits = q >= F(-2147483648.0) && q < F(2147483648.0);
  return fits ? static_cast<uint32_t>(static_cast<int32_t>(q)) : 0x80000000u;
}

// np.round (half to even) of t >= 0 under the default rounding mode, without
// a libm call: t + 2^23 has no fraction bits left, so the FPU rounds for us.
// Values at or beyond 2^23 are integral already (or Inf/NaN) and pass through.
float RoundHalfEvenNonNegative(float t) {
  constexpr float kTwo23 = 8388608.0f;
  return t < kTwo23 ? (t + kTwo23) - kTwo23 : t;
}

template <typename Q>
void StoreLe(uint8_t* dst, size_t i, uint32_t q) {
  for (size_t k = 0; k < sizeof(Q); ++k)
    dst[i * sizeof(Q) + k] = static_cast<uint8_t>(q >> (8 * k));
}

// Runs the AVX2 kernel for QuantizeFloat32 below when that path is active:
// whole blocks of 8, returning how many it did (0 on the scalar path).
template <typename Q>
size_t QuantizeFloat32Vector([[maybe_unused]] const float* src, [[maybe_unused]] size_t n,
                             [[maybe_unused]] const AffineParams& p,
                             [[maybe_unused]] uint8_t* dst) {
#if WD_HAVE_AVX2_KERNELS
  if (ActiveKernelPath() == KernelPath::kAvx2) {
    return sizeof(Q) == 1 ? internal::QuantizeUint8Avx2(src, n, p.fmin, p.fmax, p.fscale, dst)
                          : internal::QuantizeUint16Avx2(src, n, p.fmin, p.fmax, p.fscale, dst);
  }
#endif
  return 0;
}

// The element step in float32, as NumPy 1.x runs it for a float32 array and
// float64 scalars that fit float32: np.clip = min(max(x, lo), hi), then
// subtract, divide, np.round (half to even). c >= lo and scale > 0, so t >= 0
// (or NaN/Inf when float32 cannot hold the range, as in NumPy).
template <typename Q>
void QuantizeFloat32(const float* src, size_t n, const AffineParams& p, uint8_t* dst) {
  const float lo = p.fmin, hi = p.fmax, scale = p.fscale;
  for (size_t i = QuantizeFloat32Vector<Q>(src, n, p, dst); i < n; ++i) {
    float c = src[i] > lo ? src[i] : lo;
    c = c < hi ? c : hi;
    const float t = (c - lo) / scale;
    StoreLe<Q>(dst, i, CastLikeNumpy(RoundHalfEvenNonNegative(t)));
  }
}

// The same step after NumPy promoted it to float64 (nudged range beyond 3.4e38).
template <typename Q>
void QuantizeFloat64(const float* src, size_t n, const AffineParams& p, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) {
    double c = static_cast<double>(src[i]);
    c = c > p.min ? c : p.min;
    c = c < p.max ? c : p.max;
    const double t = (c - p.min) / p.scale;
    StoreLe<Q>(dst, i, CastLikeNumpy(std::nearbyint(t)));
  }
}

template <typename Q>
void Quantize(const float* src, size_t n, const AffineParams& p, uint8_t* dst) {
  if (p.constant) {
    std::memset(dst, 0, n * sizeof(Q));
  } else if (p.wide) {
    QuantizeFloat64<Q>(src, n, p, dst);
  } else {
    QuantizeFloat32<Q>(src, n, p, dst);
  }
}

}  // namespace

// Mirrors NumPy's npy_floatbits_to_halfbits (halffloat.c) bit for bit,
// including NaN payloads: the top 10 significand bits are kept and a payload
// that would vanish becomes 1, without quieting.
uint16_t FloatToHalf(float f) {
  const uint32_t u = FloatBits(f);
  const uint16_t sign = static_cast<uint16_t>((u & 0x80000000u) >> 16);
  const uint32_t exp = u & 0x7f800000u;
  const uint32_t sig = u & 0x007fffffu;
  if (exp >= 0x47800000u) {  // overflow, Inf or NaN
    if (exp == 0x7f800000u && sig != 0) {
      uint16_t nan = static_cast<uint16_t>(0x7c00u + (sig >> 13));
      if (nan == 0x7c00u) ++nan;
      return static_cast<uint16_t>(sign + nan);
    }
    return static_cast<uint16_t>(sign + 0x7c00u);
  }
  if (exp <= 0x38000000u) {  // subnormal half or signed zero
    if (exp < 0x33000000u) return sign;
    const uint32_t shift = 113 - (exp >> 23);  // 1..11
    const uint32_t full = 0x00800000u + sig;
    const bool sticky = (full & ((1u << shift) - 1)) != 0;
    return static_cast<uint16_t>(sign + RoundHalfSig(full >> shift, sticky));
  }
  // Normal: a carry out of the significand bumps the exponent (to Inf at most).
  const uint32_t half_exp = (exp - 0x38000000u) >> 13;
  return static_cast<uint16_t>(sign + half_exp + RoundHalfSig(sig, false));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = h & 0x7c00u;
  uint32_t sig = h & 0x03ffu;
  if (exp == 0x7c00u) return BitsFloat(sign | 0x7f800000u | (sig << 13));
  if (exp != 0) return BitsFloat(sign | ((exp + 0x1c000u) << 13) | (sig << 13));
  if (sig == 0) return BitsFloat(sign);
  // Subnormal half: normalise into a float32 exponent.
  uint32_t e = 113;
  while ((sig & 0x0400u) == 0) {
    sig <<= 1;
    --e;
  }
  return BitsFloat(sign | (e << 23) | ((sig & 0x03ffu) << 13));
}

// Branch-free, so the scalar path vectorizes too.
bool AnyNonFinite(const float* f, size_t n) {
  size_t i = 0;
#if WD_HAVE_AVX2_KERNELS
  if (ActiveKernelPath() == KernelPath::kAvx2) {
    if (internal::AnyNonFiniteAvx2(f, n)) return true;
    i = n / 8 * 8;
  }
#endif
  uint32_t any = 0;
  for (; i < n; ++i) any |= static_cast<uint32_t>((FloatBits(f[i]) & 0x7f800000u) == 0x7f800000u);
  return any != 0;
}

// Independent lanes instead of one running min: GCC vectorizes lanes, but not
// a float min reduction without fast-math. Which zero wins between -0.0 and
// +0.0 may differ from a sequential scan, as it does between NumPy's own SIMD
// paths; the AVX2 kernel keeps these lanes, so it matches this code exactly.
void MinMaxFinite(const float* f, size_t n, float& mn, float& mx) {
  constexpr size_t kLanes = 16;
  float lo[kLanes], hi[kLanes];
  std::fill(lo, lo + kLanes, mn);
  std::fill(hi, hi + kLanes, mx);
  size_t i = 0;
#if WD_HAVE_AVX2_KERNELS
  if (ActiveKernelPath() == KernelPath::kAvx2) i = internal::MinMaxLanesAvx2(f, n, lo, hi);
#endif
  for (; i + kLanes <= n; i += kLanes) {
    for (size_t k = 0; k < kLanes; ++k) {
      const float x = f[i + k];
      lo[k] = x < lo[k] ? x : lo[k];
      hi[k] = x > hi[k] ? x : hi[k];
    }
  }
  for (; i < n; ++i) {
    lo[0] = f[i] < lo[0] ? f[i] : lo[0];
    hi[0] = f[i] > hi[0] ? f[i] : hi[0];
  }
  for (size_t k = 0; k < kLanes; ++k) {
    mn = lo[k] < mn ? lo[k] : mn;
    mx = hi[k] > mx ? hi[k] : mx;
  }
}

bool AnyHalfOverflow(const float* f, size_t n) {
  size_t i = 0;
#if WD_HAVE_AVX2_KERNELS
  if (ActiveKernelPath() == KernelPath::kAvx2) {
    if (internal::AnyHalfOverflowAvx2(f, n)) return true;
    i = n / 8 * 8;
  }
#endif
  uint32_t overflow = 0;  // branch-free so it vectorizes
  for (; i < n; ++i) overflow |= static_cast<uint32_t>(HalfOverflows(f[i]));
  return overflow != 0;
}

void FloatsToHalves(const float* src, size_t n, uint8_t* dst) {
  size_t i = 0;
#if WD_HAVE_AVX2_KERNELS
  if (ActiveKernelPath() == KernelPath::kAvx2) i = internal::FloatsToHalvesAvx2(src, n, dst);
#endif
  for (; i < n; ++i) {
    const uint16_t h = FloatToHalf(src[i]);
    dst[2 * i] = static_cast<uint8_t>(h);
    dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

// tfjs-converter quantization.py, _get_affine_quantization_range, in float64.
AffineParams ComputeAffine(double mn, double mx, QuantDtype dtype) {
  AffineParams p;
  if (mn == mx) {
    p.constant = true;
    p.min = p.max = mn;
    p.scale = 1.0;
    p.fmin = p.fmax = static_cast<float>(mn);
    p.fscale = 1.0f;
    return p;
  }
  const double qmax = dtype == QuantDtype::kUint16 ? 65535.0 : 255.0;
  p.scale = (mx - mn) / qmax;
  if (mn <= 0 && 0 <= mx) {
    // (0 - mn), not -mn: for mn == 0 the reference gets +0 here, so min is -0.0.
    const double zero_point = std::nearbyint((0.0 - mn) / p.scale);
    p.min = -zero_point * p.scale;
    const double span = qmax * p.scale;
    p.max = span + p.min;
  } else {
    p.min = mn;
    p.max = mx;
  }
  p.fmin = static_cast<float>(p.min);
  p.fmax = static_cast<float>(p.max);
  p.fscale = static_cast<float>(p.scale);
  p.wide = !FitsNumpyFloat32(p.min) || !FitsNumpyFloat32(p.max);
  return p;
}

void QuantizeAffine(const float* src, size_t n, const AffineParams& p, QuantDtype dtype,
                    uint8_t* dst) {
  if (dtype == QuantDtype::kUint16) {
    Quantize<uint16_t>(src, n, p, dst);
  } else {
    Quantize<uint8_t>(src, n, p, dst);
  }
}

float DequantizeAffine(uint32_t q, const AffineParams& p) {
  const double scaled = static_cast<double>(q) * p.scale;
  return static_cast<float>(scaled + p.min);
}

}  // namespace wd
