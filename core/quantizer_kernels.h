// Internal to the quantizer: the AVX2+F16C kernels that quantizer.cpp
// dispatches to when ActiveKernelPath() is kAvx2. Each handles whole blocks
// of 8 elements (16 for the min/max lanes), bit-identical to the scalar code;
// the caller finishes the tail.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define WD_HAVE_AVX2_KERNELS 1
#else
#define WD_HAVE_AVX2_KERNELS 0
#endif

namespace wd::internal {

#if WD_HAVE_AVX2_KERNELS
// REQUIRES (all): CpuHasAvx2F16c(). The conversions return how many elements
// they wrote: n rounded down to a multiple of 8.
size_t FloatsToHalvesAvx2(const float* src, size_t n, uint8_t* dst);

// The float32 affine step (see QuantizeAffine) with clip bounds lo, hi and
// step `scale`; writes 1 (uint8) or 2 (uint16, little-endian) bytes per element.
size_t QuantizeUint8Avx2(const float* src, size_t n, float lo, float hi, float scale, uint8_t* dst);
size_t QuantizeUint16Avx2(const float* src, size_t n, float lo, float hi, float scale,
                          uint8_t* dst);

// The scans: whether any of f[0, n / 8 * 8) is non-finite / HalfOverflows.
bool AnyNonFiniteAvx2(const float* f, size_t n);
bool AnyHalfOverflowAvx2(const float* f, size_t n);

// MinMaxFinite's lane loop over whole blocks of 16: lo[k]/hi[k] (k < 16) fold
// in f[i + k] for each block; returns how many elements it consumed.
size_t MinMaxLanesAvx2(const float* f, size_t n, float* lo, float* hi);
#endif

}  // namespace wd::internal
