// Readers for the NumPy quantization fixtures in tests/data/quant/
// (written by tests/data/make_quant_vectors.py), shared by the quantizer
// tests of every kernel path.
#pragma once

#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace wd::test {

inline std::string QuantFixture(const std::string& name) {
  return ReadFile(SourcePath("data/quant/" + name));
}

// A little-endian T at `offset` of a fixture blob.
template <typename T>
T LoadLe(const std::string& blob, size_t offset) {
  T v;
  REQUIRE(offset + sizeof(T) <= blob.size());
  std::memcpy(&v, blob.data() + offset, sizeof(T));
  return v;
}

// n float32 values at `offset` of a fixture blob.
inline std::vector<float> LoadFloats(const std::string& blob, size_t offset, size_t n) {
  REQUIRE(offset + 4 * n <= blob.size());
  std::vector<float> v(n);
  if (n > 0) std::memcpy(v.data(), blob.data() + offset, 4 * n);
  return v;
}

// A float64 written as the hex of its bits (exact in JSON).
inline double HexDouble(const std::string& hex) {
  const uint64_t u = std::stoull(hex, nullptr, 16);
  double d;
  std::memcpy(&d, &u, 8);
  return d;
}

// Bit patterns of floats, both ways.
inline uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }
inline uint64_t Bits(double d) { return std::bit_cast<uint64_t>(d); }
inline float FromBits(uint32_t u) { return std::bit_cast<float>(u); }

}  // namespace wd::test
