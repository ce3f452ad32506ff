// ElementCodec: NumPy element bytes -> the bytes tfjs reads (docs/formats.md,
// "Dtypes" and the encodings). Works on chunks of whole elements so a
// weight streams through in bounded memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/npy_header.h"
#include "core/status.h"

namespace wd {

enum class OutDtype { kFloat32, kInt32, kBool, kString, kComplex64 };

// "float32", "int32", "bool", "string", "complex64".
const char* OutDtypeName(OutDtype d);

// The tfjs dtype a NumPy dtype maps to. Every dtype ReadNpyHeader accepts maps.
OutDtype MapDtype(const NpyDtype& from);

// Bytes per element of a non-string output dtype (float32/int32 4, bool 1,
// complex64 8).
size_t OutElementSize(OutDtype d);

// True when ConvertElements copies `from` unchanged (little-endian float32,
// int32 and complex64): its file bytes can be written as they are.
bool ConvertsAsIs(const NpyDtype& from);

// True when converting `from` can refuse a value (an i8/u4/u8 that does not
// fit int32, a U<n> code point that is not a character): its data must be
// read to know whether the weight publishes.
bool ConversionChecksValues(const NpyDtype& from);

// Converts `count` elements at `src` (file bytes of dtype `from`, any byte
// order) into little-endian elements of MapDtype(from) at `dst`, which has
// room for count * OutElementSize(...). Not for strings.
// Fails (kBundle) when an i8/u4/u8 value does not fit int32: the message names
// `weight`, the flat C-order element index (first_index + i) and the value.
Status ConvertElements(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                       const std::string& weight, uint64_t first_index);

// String weights (U<n> and S<n>): per element a little-endian uint32 byte
// length then the UTF-8 bytes; trailing NULs stripped as NumPy does. U<n>
// holds UTF-32 code units; an invalid code point is kBundle naming the
// weight and element index.
Status AppendEncodedStrings(const NpyDtype& from, const uint8_t* src, size_t count,
                            std::string& out, const std::string& weight, uint64_t first_index);

// The encoded size AppendEncodedStrings would produce, without producing it.
Result<uint64_t> EncodedStringsSize(const NpyDtype& from, const uint8_t* src, size_t count,
                                    const std::string& weight, uint64_t first_index);

}  // namespace wd
