// AVX2+F16C kernels for quantizer.cpp. Compiled without any -m flag: only the
// functions marked WD_AVX2 use AVX, and they run only after CpuHasAvx2F16c().
// Each vector operation mirrors one scalar operation with identical IEEE
// semantics (operand order matters for NaN and signed zeros; see below).
#include "core/quantizer_kernels.h"

#if WD_HAVE_AVX2_KERNELS

#include <immintrin.h>

#include <limits>

#include "core/quantizer.h"

#define WD_AVX2 __attribute__((target("avx2,f16c")))

namespace wd::internal {
namespace {

// NumPy keeps a signalling NaN's payload unquieted; F16C would quiet it. A
// block holding any NaN therefore goes through the scalar FloatToHalf.
void HalvesScalar(const float* src, uint8_t* dst) {
  for (int i = 0; i < 8; ++i) {
    const uint16_t h = FloatToHalf(src[i]);
    dst[2 * i] = static_cast<uint8_t>(h);
    dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

// q = cast(round_half_even((min(max(x, lo), hi) - lo) / scale)) for 8 floats,
// as int32 lanes (x86 truncation semantics: out of range or NaN -> INT32_MIN).
WD_AVX2 __m256i QuantizeBlock(const float* src, __m256 lo, __m256 hi, __m256 scale) {
  // MAXPS/MINPS return the second operand unless the first compares greater
  // (less): exactly `x > lo ? x : lo` and `c < hi ? c : hi` for NaN and +-0.
  __m256 c = _mm256_max_ps(_mm256_loadu_ps(src), lo);
  c = _mm256_min_ps(c, hi);
  const __m256 t = _mm256_div_ps(_mm256_sub_ps(c, lo), scale);
  // The scalar +2^23 trick itself, not ROUNDPS: identical for every t (also
  // t < 0, which inverted bounds could give) and under any rounding mode.
  const __m256 two23 = _mm256_set1_ps(8388608.0f);
  const __m256 rounded = _mm256_sub_ps(_mm256_add_ps(t, two23), two23);
  const __m256 small = _mm256_cmp_ps(t, two23, _CMP_LT_OQ);
  return _mm256_cvttps_epi32(_mm256_blendv_ps(t, rounded, small));
}

// Gather byte 0 (uint8) or bytes 0-1 (uint16) of each int32 lane into the low
// 8 or 16 bytes: a shuffle keeps the low bits, as the scalar cast does, where
// a saturating pack would clamp. The shuffle works per 128-bit lane; the
// permute then joins the two lanes' results.
WD_AVX2 __m128i LowBytes8(__m256i q) {
  const __m256i pick =
      _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i lanes = _mm256_shuffle_epi8(q, pick);
  return _mm256_castsi256_si128(
      _mm256_permutevar8x32_epi32(lanes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

WD_AVX2 __m128i LowBytes16(__m256i q) {
  const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0,
                                        1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i lanes = _mm256_shuffle_epi8(q, pick);
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(lanes, 0x08));  // qwords 0, 2
}

}  // namespace

WD_AVX2 size_t FloatsToHalvesAvx2(const float* src, size_t n, uint8_t* dst) {
  const size_t blocks = n / 8 * 8;
  for (size_t i = 0; i < blocks; i += 8) {
    const __m256 x = _mm256_loadu_ps(src + i);
    if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)) != 0) {
      HalvesScalar(src + i, dst + 2 * i);
      continue;
    }
    // Round to nearest even regardless of MXCSR, as FloatToHalf does.
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), h);
  }
  return blocks;
}

WD_AVX2 size_t QuantizeUint8Avx2(const float* src, size_t n, float lo, float hi, float scale,
                                 uint8_t* dst) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), vscale = _mm256_set1_ps(scale);
  const size_t blocks = n / 8 * 8;
  for (size_t i = 0; i < blocks; i += 8) {
    const __m128i q = LowBytes8(QuantizeBlock(src + i, vlo, vhi, vscale));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + i), q);
  }
  return blocks;
}

WD_AVX2 size_t QuantizeUint16Avx2(const float* src, size_t n, float lo, float hi, float scale,
                                  uint8_t* dst) {
  const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), vscale = _mm256_set1_ps(scale);
  const size_t blocks = n / 8 * 8;
  for (size_t i = 0; i < blocks; i += 8) {
    const __m128i q = LowBytes16(QuantizeBlock(src + i, vlo, vhi, vscale));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), q);
  }
  return blocks;
}

// Exponent bits all ones: Inf or NaN.
WD_AVX2 bool AnyNonFiniteAvx2(const float* f, size_t n) {
  const __m256i exp = _mm256_set1_epi32(0x7f800000);
  __m256i any = _mm256_setzero_si256();
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const __m256i x = _mm256_castps_si256(_mm256_loadu_ps(f + i));
    any = _mm256_or_si256(any, _mm256_cmpeq_epi32(_mm256_and_si256(x, exp), exp));
  }
  return _mm256_testz_si256(any, any) == 0;
}

// Finite and |x| >= 65520. The ordered compares are false for NaN, and
// |x| < Inf excludes the infinities, as `f - f == 0` does in HalfOverflows.
WD_AVX2 bool AnyHalfOverflowAvx2(const float* f, size_t n) {
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 limit = _mm256_set1_ps(65520.0f);
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  __m256 any = _mm256_setzero_ps();
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(f + i), magnitude);
    const __m256 big =
        _mm256_and_ps(_mm256_cmp_ps(a, limit, _CMP_GE_OQ), _mm256_cmp_ps(a, inf, _CMP_LT_OQ));
    any = _mm256_or_ps(any, big);
  }
  return _mm256_movemask_ps(any) != 0;
}

// Lanes 0-7 of the scalar loop in one register, 8-15 in the other. MINPS
// returns the second operand unless the first is less: min(x, lo) is exactly
// `x < lo ? x : lo`, so an equal -0.0/+0.0 keeps the lane's value; likewise
// MAXPS for `x > hi ? x : hi`.
WD_AVX2 size_t MinMaxLanesAvx2(const float* f, size_t n, float* lo, float* hi) {
  __m256 lo0 = _mm256_loadu_ps(lo), lo1 = _mm256_loadu_ps(lo + 8);
  __m256 hi0 = _mm256_loadu_ps(hi), hi1 = _mm256_loadu_ps(hi + 8);
  const size_t blocks = n / 16 * 16;
  for (size_t i = 0; i < blocks; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(f + i), x1 = _mm256_loadu_ps(f + i + 8);
    lo0 = _mm256_min_ps(x0, lo0);
    lo1 = _mm256_min_ps(x1, lo1);
    hi0 = _mm256_max_ps(x0, hi0);
    hi1 = _mm256_max_ps(x1, hi1);
  }
  _mm256_storeu_ps(lo, lo0);
  _mm256_storeu_ps(lo + 8, lo1);
  _mm256_storeu_ps(hi, hi0);
  _mm256_storeu_ps(hi + 8, hi1);
  return blocks;
}

}  // namespace wd::internal

#endif  // WD_HAVE_AVX2_KERNELS
