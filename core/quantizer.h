// Quantizer: float32 -> float16 (IEEE round-to-nearest-even, bit-identical
// to NumPy's astype(float16)) and affine uint8/uint16 with the reference's
// nudged zero point and float32 element arithmetic (docs/formats.md, "Quantization"),
// plus the scans that vet a weight first (non-finite, min/max, half overflow).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/pipeline_options.h"

namespace wd {

uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);

// True when FloatToHalf(f) would turn a finite f into +-Inf (|f| >= 65520).
inline bool HalfOverflows(float f) { return (f >= 65520.0f || f <= -65520.0f) && f - f == 0.0f; }

// True when any of f[0..n) is NaN or infinite.
bool AnyNonFinite(const float* f, size_t n);

// Folds f[0..n) into mn/mx via 16 lanes (the last n % 16 into lane 0) reduced
// in order, so which of -0.0/+0.0 wins is fixed. REQUIRES: finite inputs.
void MinMaxFinite(const float* f, size_t n, float& mn, float& mx);

// True when HalfOverflows(x) for any x in f[0..n) (Inf and NaN do not).
bool AnyHalfOverflow(const float* f, size_t n);

// Converts n floats to little-endian halves at dst (2*n bytes).
void FloatsToHalves(const float* src, size_t n, uint8_t* dst);

struct AffineParams {
  double min = 0;                        // manifest "min" (nudged), float64
  double scale = 1.0;                    // manifest "scale", float64
  double max = 0;                        // nudged max, float64 (the clip bound)
  bool constant = false;                 // mn == mx: every byte 0
  float fmin = 0, fmax = 0, fscale = 1;  // the float32 element-step operands
  // NumPy 1.x runs the element step in float64 when min or max is beyond
  // +-3.4e38 (value-based casting); only ranges near FLT_MAX do that.
  bool wide = false;
};

// mn, mx: min and max of the weight as float64; dtype kUint8 or kUint16.
AffineParams ComputeAffine(double mn, double mx, QuantDtype dtype);

// q = round_half_even((clamp(x, fmin, fmax) - fmin) / fscale), float32
// arithmetic; writes n bytes (uint8) or 2*n little-endian bytes (uint16).
void QuantizeAffine(const float* src, size_t n, const AffineParams& p, QuantDtype dtype,
                    uint8_t* dst);

// The value a client reconstructs: tfjs computes q * scale + min in float64
// (JS numbers) and stores it into a Float32Array.
float DequantizeAffine(uint32_t q, const AffineParams& p);

}  // namespace wd
