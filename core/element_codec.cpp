#include "core/element_codec.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/quantizer.h"

namespace wd {
namespace {

template <typename U>
U ByteSwap(U v) {
  if constexpr (sizeof(U) == 2) return static_cast<U>(__builtin_bswap16(v));
  if constexpr (sizeof(U) == 4) return __builtin_bswap32(v);
  if constexpr (sizeof(U) == 8) return __builtin_bswap64(v);
  return v;
}

template <typename T>
using SameSizeUint = std::conditional_t<sizeof(T) == 2, uint16_t,
                                        std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>>;

// Loads element i of a packed array of T (any alignment), byte-swapping when
// the file is big-endian.
template <typename T, bool kSwap>
T Load(const uint8_t* src, size_t i) {
  T v;
  if constexpr (kSwap && sizeof(T) > 1) {
    SameSizeUint<T> u;
    std::memcpy(&u, src + i * sizeof(T), sizeof(T));
    u = ByteSwap(u);
    std::memcpy(&v, &u, sizeof(T));
  } else {
    std::memcpy(&v, src + i * sizeof(T), sizeof(T));
  }
  return v;
}

template <typename T>
void Store(uint8_t* dst, size_t i, T v) {
  std::memcpy(dst + i * sizeof(T), &v, sizeof(T));
}

// Applies `out = f(in)` element-wise; In and Out are loaded/stored as raw
// scalars so the loop stays simple enough for the compiler to vectorize.
template <typename In, typename Out, bool kSwap, typename F>
void Map(const uint8_t* src, size_t count, uint8_t* dst, F f) {
  for (size_t i = 0; i < count; ++i) Store<Out>(dst, i, f(Load<In, kSwap>(src, i)));
}

template <typename In, typename Out, typename F>
void MapAnyOrder(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst, F f) {
  if (from.order == ByteOrder::kBig) {
    Map<In, Out, true>(src, count, dst, f);
  } else {
    Map<In, Out, false>(src, count, dst, f);
  }
}

template <typename In>
int32_t Narrow(In v) {
  return static_cast<int32_t>(v);
}

std::string TooWideMessage(const std::string& weight, uint64_t index, const std::string& value) {
  return "weight '" + weight + "': element " + std::to_string(index) + " (flat C-order index) is " +
         value +
         ", which does not fit int32 (tfjs has no int64); convert the array to int32 or float32 "
         "before exporting";
}

template <typename In>
bool FitsInt32(In v) {
  if constexpr (std::is_signed_v<In>) {
    return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
  } else {
    return v <= static_cast<In>(std::numeric_limits<int32_t>::max());
  }
}

// 64-bit and uint32 integers: converted only when every value fits int32. The
// scan is a flag over the whole chunk (vectorizable); the first offender is
// looked up only on failure.
template <typename In, bool kSwap>
Status NarrowChecked(const uint8_t* src, size_t count, uint8_t* dst, const std::string& weight,
                     uint64_t first_index) {
  bool all_fit = true;
  for (size_t i = 0; i < count; ++i) {
    const In v = Load<In, kSwap>(src, i);
    all_fit &= FitsInt32(v);
    Store<int32_t>(dst, i, static_cast<int32_t>(v));
  }
  if (all_fit) return Status::Ok();
  for (size_t i = 0; i < count; ++i) {
    const In v = Load<In, kSwap>(src, i);
    if (!FitsInt32(v))
      return Status::Bundle(TooWideMessage(weight, first_index + i, std::to_string(v)));
  }
  return Status::Ok();
}

template <typename In>
Status NarrowCheckedAnyOrder(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                             const std::string& weight, uint64_t first_index) {
  if (from.order == ByteOrder::kBig) {
    return NarrowChecked<In, true>(src, count, dst, weight, first_index);
  }
  return NarrowChecked<In, false>(src, count, dst, weight, first_index);
}

Status Unsupported(const NpyDtype& from, const std::string& weight) {
  return Status::Bundle("weight '" + weight + "': dtype '" + from.descr +
                        "' has no tfjs encoding here");
}

Status ConvertFloat(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                    const std::string& weight) {
  switch (from.item_size) {
    case 2:
      MapAnyOrder<uint16_t, float>(from, src, count, dst, HalfToFloat);
      return Status::Ok();
    case 4:
      if (from.order != ByteOrder::kBig) {
        std::memcpy(dst, src, count * 4);
      } else {
        MapAnyOrder<uint32_t, uint32_t>(from, src, count, dst, [](uint32_t v) { return v; });
      }
      return Status::Ok();
    case 8:
      MapAnyOrder<double, float>(from, src, count, dst,
                                 [](double v) { return static_cast<float>(v); });
      return Status::Ok();
  }
  return Unsupported(from, weight);
}

// bfloat16 is the upper half of a float32: widening is exact, NaN payloads
// included.
float BFloat16ToFloat(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// float8 E5M2 is the upper byte of an IEEE float16 (same exponent bias).
float Float8E5M2ToFloat(uint8_t v) { return HalfToFloat(static_cast<uint16_t>(v << 8)); }

// float8 E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no
// infinities, S.1111.111 is NaN, exponent 0 is subnormal (m * 2^-9). Every
// value is a float32 exactly; a table of the 256.
struct Float8E4M3Table {
  float value[256];
  Float8E4M3Table() {
    for (int b = 0; b < 256; ++b) {
      const int e = (b >> 3) & 0xf;
      const int m = b & 7;
      float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9)
                         : std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
      if (e == 15 && m == 7) mag = std::numeric_limits<float>::quiet_NaN();
      value[b] = (b & 0x80) != 0 ? -mag : mag;
    }
  }
};

float Float8E4M3ToFloat(uint8_t v) {
  static const Float8E4M3Table table;
  return table.value[v];
}

Status ConvertNarrowFloat(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst) {
  switch (from.kind) {
    case SourceKind::kBFloat16:
      MapAnyOrder<uint16_t, float>(from, src, count, dst, BFloat16ToFloat);
      break;
    case SourceKind::kFloat8E5M2:
      Map<uint8_t, float, false>(src, count, dst, Float8E5M2ToFloat);
      break;
    default:
      Map<uint8_t, float, false>(src, count, dst, Float8E4M3ToFloat);
      break;
  }
  return Status::Ok();
}

Status ConvertComplex(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                      const std::string& weight) {
  // A complex element is two floats (real, imag) each in the file's byte order.
  NpyDtype part = from;
  part.kind = SourceKind::kFloat;
  part.item_size = from.item_size / 2;
  if (from.item_size != 8 && from.item_size != 16) return Unsupported(from, weight);
  return ConvertFloat(part, src, count * 2, dst, weight);
}

Status ConvertSigned(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                     const std::string& weight, uint64_t first_index) {
  switch (from.item_size) {
    case 1:
      MapAnyOrder<int8_t, int32_t>(from, src, count, dst, Narrow<int8_t>);
      return Status::Ok();
    case 2:
      MapAnyOrder<int16_t, int32_t>(from, src, count, dst, Narrow<int16_t>);
      return Status::Ok();
    case 4:
      if (from.order != ByteOrder::kBig) {
        std::memcpy(dst, src, count * 4);
      } else {
        MapAnyOrder<int32_t, int32_t>(from, src, count, dst, Narrow<int32_t>);
      }
      return Status::Ok();
    case 8:
      return NarrowCheckedAnyOrder<int64_t>(from, src, count, dst, weight, first_index);
  }
  return Unsupported(from, weight);
}

Status ConvertUnsigned(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                       const std::string& weight, uint64_t first_index) {
  switch (from.item_size) {
    case 1:
      MapAnyOrder<uint8_t, int32_t>(from, src, count, dst, Narrow<uint8_t>);
      return Status::Ok();
    case 2:
      MapAnyOrder<uint16_t, int32_t>(from, src, count, dst, Narrow<uint16_t>);
      return Status::Ok();
    case 4:
      return NarrowCheckedAnyOrder<uint32_t>(from, src, count, dst, weight, first_index);
    case 8:
      return NarrowCheckedAnyOrder<uint64_t>(from, src, count, dst, weight, first_index);
  }
  return Unsupported(from, weight);
}

// ---- Strings ----

// Number of code units (U: 4 bytes, S: 1 byte) in element `e` once trailing
// NULs are stripped.
size_t TrimmedUnits(const uint8_t* elem, size_t unit, size_t units) {
  while (units > 0) {
    bool zero = true;
    for (size_t k = 0; k < unit; ++k) zero &= elem[(units - 1) * unit + k] == 0;
    if (!zero) break;
    --units;
  }
  return units;
}

uint32_t LoadCodeUnit(const uint8_t* p, bool big) {
  return big ? Load<uint32_t, true>(p, 0) : Load<uint32_t, false>(p, 0);
}

size_t Utf8Length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

void AppendUtf8(uint32_t cp, std::string& out) {
  auto b = [](uint32_t v) { return static_cast<char>(v); };
  if (cp < 0x80) {
    out += b(cp);
  } else if (cp < 0x800) {
    out += b(0xc0 | (cp >> 6));
    out += b(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += b(0xe0 | (cp >> 12));
    out += b(0x80 | ((cp >> 6) & 0x3f));
    out += b(0x80 | (cp & 0x3f));
  } else {
    out += b(0xf0 | (cp >> 18));
    out += b(0x80 | ((cp >> 12) & 0x3f));
    out += b(0x80 | ((cp >> 6) & 0x3f));
    out += b(0x80 | (cp & 0x3f));
  }
}

Status CheckCodePoint(uint32_t cp, const std::string& weight, uint64_t index, size_t pos) {
  if (cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff)) return Status::Ok();
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%X", cp);
  return Status::Bundle("weight '" + weight + "': string element " + std::to_string(index) +
                        " (flat C-order index) holds " + hex + " at character " +
                        std::to_string(pos) +
                        ", which is not a Unicode scalar value and has no UTF-8 encoding");
}

// Encodes (out != null) or only sizes (out == null) `count` string elements,
// adding their encoded byte count to *total. Every code point is validated
// either way, so sizing fails exactly where encoding would.
Status EncodeStrings(const NpyDtype& from, const uint8_t* src, size_t count, std::string* out,
                     uint64_t* total, const std::string& weight, uint64_t first_index) {
  const bool unicode = from.kind == SourceKind::kUnicode;
  if (!unicode && from.kind != SourceKind::kBytes) return Unsupported(from, weight);
  if (unicode && from.item_size % 4 != 0) return Unsupported(from, weight);
  const size_t unit = unicode ? 4 : 1;
  const bool big = from.order == ByteOrder::kBig;
  for (size_t e = 0; e < count; ++e) {
    const uint8_t* elem = src + e * from.item_size;
    const size_t units = TrimmedUnits(elem, unit, from.item_size / unit);
    uint64_t len = units;
    if (unicode) {
      len = 0;
      for (size_t k = 0; k < units; ++k) {
        const uint32_t cp = LoadCodeUnit(elem + 4 * k, big);
        WD_RETURN_IF_ERROR(CheckCodePoint(cp, weight, first_index + e, k));
        len += Utf8Length(cp);
      }
    }
    *total += 4 + len;
    if (out == nullptr) continue;
    const uint32_t len32 = static_cast<uint32_t>(len);
    for (int k = 0; k < 4; ++k) *out += static_cast<char>((len32 >> (8 * k)) & 0xff);
    if (!unicode) {
      out->append(reinterpret_cast<const char*>(elem), units);
      continue;
    }
    for (size_t k = 0; k < units; ++k) AppendUtf8(LoadCodeUnit(elem + 4 * k, big), *out);
  }
  return Status::Ok();
}

}  // namespace

const char* OutDtypeName(OutDtype d) {
  switch (d) {
    case OutDtype::kFloat32:
      return "float32";
    case OutDtype::kInt32:
      return "int32";
    case OutDtype::kBool:
      return "bool";
    case OutDtype::kString:
      return "string";
    case OutDtype::kComplex64:
      return "complex64";
  }
  return "?";
}

OutDtype MapDtype(const NpyDtype& from) {
  switch (from.kind) {
    case SourceKind::kFloat:
    case SourceKind::kBFloat16:
    case SourceKind::kFloat8E4M3:
    case SourceKind::kFloat8E5M2:
      return OutDtype::kFloat32;
    case SourceKind::kSignedInt:
    case SourceKind::kUnsignedInt:
      return OutDtype::kInt32;
    case SourceKind::kBool:
      return OutDtype::kBool;
    case SourceKind::kComplex:
      return OutDtype::kComplex64;
    case SourceKind::kUnicode:
    case SourceKind::kBytes:
      return OutDtype::kString;
  }
  return OutDtype::kFloat32;
}

size_t OutElementSize(OutDtype d) {
  switch (d) {
    case OutDtype::kFloat32:
    case OutDtype::kInt32:
      return 4;
    case OutDtype::kBool:
      return 1;
    case OutDtype::kComplex64:
      return 8;
    case OutDtype::kString:
      return 0;
  }
  return 0;
}

bool ConversionChecksValues(const NpyDtype& from) {
  switch (from.kind) {
    case SourceKind::kSignedInt:
      return from.item_size == 8;
    case SourceKind::kUnsignedInt:
      return from.item_size >= 4;
    case SourceKind::kUnicode:
      return true;
    default:
      return false;
  }
}

bool ConvertsAsIs(const NpyDtype& from) {
  if (from.order == ByteOrder::kBig) return false;
  return (from.kind == SourceKind::kFloat && from.item_size == 4) ||
         (from.kind == SourceKind::kSignedInt && from.item_size == 4) ||
         (from.kind == SourceKind::kComplex && from.item_size == 8);
}

Status ConvertElements(const NpyDtype& from, const uint8_t* src, size_t count, uint8_t* dst,
                       const std::string& weight, uint64_t first_index) {
  if (count == 0) return Status::Ok();
  switch (from.kind) {
    case SourceKind::kFloat:
      return ConvertFloat(from, src, count, dst, weight);
    case SourceKind::kBFloat16:
    case SourceKind::kFloat8E4M3:
    case SourceKind::kFloat8E5M2:
      return ConvertNarrowFloat(from, src, count, dst);
    case SourceKind::kComplex:
      return ConvertComplex(from, src, count, dst, weight);
    case SourceKind::kSignedInt:
      return ConvertSigned(from, src, count, dst, weight, first_index);
    case SourceKind::kUnsignedInt:
      return ConvertUnsigned(from, src, count, dst, weight, first_index);
    case SourceKind::kBool:
      if (from.item_size != 1) return Unsupported(from, weight);
      for (size_t i = 0; i < count; ++i) dst[i] = src[i] != 0 ? 1 : 0;
      return Status::Ok();
    case SourceKind::kUnicode:
    case SourceKind::kBytes:
      break;
  }
  return Unsupported(from, weight);
}

Status AppendEncodedStrings(const NpyDtype& from, const uint8_t* src, size_t count,
                            std::string& out, const std::string& weight, uint64_t first_index) {
  const size_t before = out.size();
  uint64_t total = 0;
  Status s = EncodeStrings(from, src, count, &out, &total, weight, first_index);
  if (!s.ok()) out.resize(before);  // never leave half an element behind
  return s;
}

Result<uint64_t> EncodedStringsSize(const NpyDtype& from, const uint8_t* src, size_t count,
                                    const std::string& weight, uint64_t first_index) {
  uint64_t total = 0;
  WD_RETURN_IF_ERROR(EncodeStrings(from, src, count, nullptr, &total, weight, first_index));
  return total;
}

}  // namespace wd
