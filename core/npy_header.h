// The .npy header: magic, version (1.0, 2.0, 3.0), and the Python-literal
// dict {'descr', 'fortran_order', 'shape'}. Parsing is strict and bounded; see
// docs/formats.md for the grammar we accept.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/byte_source.h"
#include "core/status.h"

namespace wd {

enum class ByteOrder { kLittle, kBig, kNone };  // kNone: '|' (1-byte / bytes)

// Source element kinds we can read. Anything else is refused at parse time.
// The bfloat16 and float8 kinds come only from safetensors (NumPy has no
// such dtypes); they widen to float32 exactly.
enum class SourceKind {
  kFloat,
  kBFloat16,
  kFloat8E4M3,  // E4M3FN: no infinities, NaN is S.1111.111
  kFloat8E5M2,  // IEEE-like: infinities and NaNs
  kSignedInt,
  kUnsignedInt,
  kBool,
  kComplex,
  kUnicode,
  kBytes
};

struct NpyDtype {
  std::string descr;  // as written, e.g. "<f4", "|b1", ">U7"
  SourceKind kind = SourceKind::kFloat;
  ByteOrder order = ByteOrder::kLittle;
  uint32_t item_size = 0;  // bytes per element in the file (U<n>: 4*n)
};

struct NpyHeader {
  int major = 1;
  int minor = 0;
  NpyDtype dtype;
  std::vector<uint64_t> shape;  // empty for a scalar
  bool fortran_order = false;
  uint64_t header_size = 0;    // bytes before the data (magic..padding)
  uint64_t element_count = 1;  // product of shape (1 for a scalar)
  uint64_t data_bytes = 0;     // element_count * item_size, overflow-checked
};

// Largest header text we accept (NumPy's own reader refuses > 10000 bytes by
// default; we allow more for very high-rank shapes but stay bounded).
inline constexpr uint32_t kMaxNpyHeaderText = 65536;

// Reads and parses a header from the start of `src`. `where` names the file or
// member for messages ("model.npz: member 'dense/kernel.npy'"). Unsupported
// dtypes (object, structured, void, datetime, timedelta, float128, ...) are
// kBundle errors naming the descr. A header cut short is kBundle (a caller
// watching a growing file may treat it as incomplete).
Result<NpyHeader> ReadNpyHeader(ByteSource& src, const std::string& where);

// Parses from bytes in memory (tests and fuzzing).
Result<NpyHeader> ParseNpyHeader(const std::vector<uint8_t>& bytes, const std::string& where);

}  // namespace wd
