#include "core/weight_encoder.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/quantizer.h"

namespace wd {
namespace {

std::string Describe(const WeightEntry& w) { return w.where + ": weight '" + w.name + "'"; }

// Calls fn(src_chunk, count, first_index) over the stream's current read:
// the weight's elements in C order.
template <typename Fn>
Status ForEachChunk(WeightStream& stream, const WeightEntry& w, Fn&& fn) {
  const size_t item = w.dtype.item_size;
  uint64_t done = 0;
  for (;;) {
    WD_ASSIGN_OR_RETURN(std::span<const uint8_t> chunk, stream.Next());
    if (chunk.empty()) break;
    const size_t n = chunk.size() / item;
    WD_RETURN_IF_ERROR(fn(chunk.data(), n, done));
    done += n;
  }
  return Status::Ok();
}

// A chunk of source elements as float32 (the weight maps to float32):
// little-endian float32 sources are used in place, others converted into
// `scratch`. Chunks are allocated with new[], so float-aligned.
Result<const float*> AsFloats(const WeightEntry& w, const uint8_t* src, size_t n, uint64_t first,
                              std::vector<float>& scratch) {
  if (ConvertsAsIs(w.dtype)) return reinterpret_cast<const float*>(src);
  scratch.resize(n);
  WD_RETURN_IF_ERROR(
      ConvertElements(w.dtype, src, n, reinterpret_cast<uint8_t*>(scratch.data()), w.name, first));
  return static_cast<const float*>(scratch.data());
}

// "NaN" or "infinite" for the float32 `f` that source element `src` of `w`
// became; a finite float64 beyond float32's range says where its
// infinity came from.
std::string NonFiniteWhat(const WeightEntry& w, const uint8_t* src, float f) {
  if (std::isnan(f)) return "NaN";
  if (w.dtype.kind == SourceKind::kFloat && w.dtype.item_size == 8) {
    uint8_t b[8];
    std::memcpy(b, src, 8);
    if (w.dtype.order == ByteOrder::kBig) std::reverse(b, b + 8);
    double d;
    std::memcpy(&d, b, 8);  // a little-endian host, as in core/element_codec.cpp
    if (std::isfinite(d)) {
      char text[32];
      const std::to_chars_result r = std::to_chars(text, text + sizeof text, d);  // shortest
      return std::string("infinite as float32: its float64 value ") + std::string(text, r.ptr) +
             " is beyond float32's range, and converting rounds it to " +
             (d > 0 ? "+Inf" : "-Inf") + " as NumPy's astype(float32) does";
    }
  }
  return "infinite";
}

// Min and max of the weight (refusing NaN/Inf), from the stream's first pass.
Result<AffineParams> AffineFor(WeightStream& stream, const WeightEntry& w, QuantDtype q) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  std::vector<float> scratch;
  WD_RETURN_IF_ERROR(ForEachChunk(stream, w, [&](const uint8_t* s, size_t n, uint64_t first) {
    WD_ASSIGN_OR_RETURN(const float* f, AsFloats(w, s, n, first, scratch));
    if (AnyNonFinite(f, n)) {
      const size_t i = static_cast<size_t>(
          std::find_if(f, f + n, [](float x) { return !std::isfinite(x); }) - f);
      return Status::Bundle(Describe(w) + ": element " + std::to_string(first + i) + " is " +
                            NonFiniteWhat(w, s + i * w.dtype.item_size, f[i]) + "; " +
                            QuantDtypeName(q) + " quantization needs finite values");
    }
    MinMaxFinite(f, n, mn, mx);
    return Status::Ok();
  }));
  if (w.element_count == 0) mn = mx = 0;
  if (std::isinf(mx - mn)) {
    // The reference's float32 step overflows here and silently writes zeros.
    return Status::Bundle(Describe(w) + ": values span [" + std::to_string(mn) + ", " +
                          std::to_string(mx) + "], wider than float32 can subtract; " +
                          QuantDtypeName(q) + " quantization would corrupt it");
  }
  return ComputeAffine(mn, mx, q);
}

void AddError(QuantErrorStats* stats, float original, float decoded) {
  if (stats == nullptr) return;
  // NaN and ±Inf survive float16 exactly (the only quantization that takes
  // them): no error, where the subtraction would make the sums NaN.
  const bool same = decoded == original || (std::isnan(decoded) && std::isnan(original));
  const double e = same ? 0.0 : std::fabs(static_cast<double>(decoded) - original);
  stats->max_abs = std::max(stats->max_abs, e);
  stats->sum_sq += e * e;
  ++stats->count;
}

Result<std::optional<ManifestQuantization>> EncodeAffine(WeightStream& stream, const WeightEntry& w,
                                                         QuantDtype q, ByteSink& sink,
                                                         QuantErrorStats* stats) {
  WD_ASSIGN_OR_RETURN(AffineParams p, AffineFor(stream, w, q));
  const size_t width = q == QuantDtype::kUint8 ? 1 : 2;
  std::vector<float> scratch;
  std::vector<uint8_t> out;
  // Second pass (ReadsFor): the stored member raw, or the deflated one's copy.
  WD_RETURN_IF_ERROR(ForEachChunk(stream, w, [&](const uint8_t* s, size_t n, uint64_t first) {
    WD_ASSIGN_OR_RETURN(const float* f, AsFloats(w, s, n, first, scratch));
    out.resize(n * width);
    QuantizeAffine(f, n, p, q, out.data());
    if (stats != nullptr) {
      for (size_t i = 0; i < n; ++i) {
        const uint32_t v = width == 1 ? out[i] : out[2 * i] | (out[2 * i + 1] << 8);
        AddError(stats, f[i], DequantizeAffine(v, p));
      }
    }
    return sink.Append(out.data(), out.size());
  }));
  return std::optional(ManifestQuantization{.dtype = q, .min = p.min, .scale = p.scale});
}

Result<std::optional<ManifestQuantization>> EncodeHalf(WeightStream& stream, const WeightEntry& w,
                                                       ByteSink& sink, QuantErrorStats* stats) {
  std::vector<float> scratch;
  std::vector<uint8_t> out;
  WD_RETURN_IF_ERROR(ForEachChunk(stream, w, [&](const uint8_t* s, size_t n, uint64_t first) {
    WD_ASSIGN_OR_RETURN(const float* f, AsFloats(w, s, n, first, scratch));
    const bool overflow = AnyHalfOverflow(f, n);
    for (size_t i = 0; overflow && i < n; ++i) {
      if (HalfOverflows(f[i])) {
        return Status::Bundle(Describe(w) + ": element " + std::to_string(first + i) + " is " +
                              std::to_string(f[i]) +
                              ", beyond float16's range (|x| >= 65520 rounds to infinity)");
      }
    }
    out.resize(n * 2);
    FloatsToHalves(f, n, out.data());
    if (stats != nullptr) {
      for (size_t i = 0; i < n; ++i) {
        AddError(stats, f[i],
                 HalfToFloat(static_cast<uint16_t>(out[2 * i] | (out[2 * i + 1] << 8))));
      }
    }
    return sink.Append(out.data(), out.size());
  }));
  return std::optional(ManifestQuantization{.dtype = QuantDtype::kFloat16, .min = 0, .scale = 1});
}

Status EncodePlain(WeightStream& stream, const WeightEntry& w, OutDtype out, ByteSink& sink) {
  std::vector<uint8_t> buf;
  std::string strings;
  const bool as_is = ConvertsAsIs(w.dtype);
  return ForEachChunk(stream, w, [&](const uint8_t* s, size_t n, uint64_t first) -> Status {
    if (out == OutDtype::kString) {
      strings.clear();
      WD_RETURN_IF_ERROR(AppendEncodedStrings(w.dtype, s, n, strings, w.name, first));
      return sink.Append(reinterpret_cast<const uint8_t*>(strings.data()), strings.size());
    }
    if (as_is) return sink.Append(s, n * w.dtype.item_size);  // no copy
    buf.resize(n * OutElementSize(out));
    WD_RETURN_IF_ERROR(ConvertElements(w.dtype, s, n, buf.data(), w.name, first));
    return sink.Append(buf.data(), buf.size());
  });
}

}  // namespace

double QuantErrorStats::rms() const { return count == 0 ? 0 : std::sqrt(sum_sq / count); }

void AppendReads(const PlannedWeight& pw, std::vector<WeightRead>& reads) {
  const bool affine = pw.quant == QuantDtype::kUint8 || pw.quant == QuantDtype::kUint16;
  reads.push_back({.entry = pw.entry, .second_pass = false, .keep_for_second = affine});
  if (affine) reads.push_back({.entry = pw.entry, .second_pass = true});
}

Result<std::optional<ManifestQuantization>> EncodeWeight(const Bundle& bundle,
                                                         const PlannedWeight& pw, ByteSink& sink,
                                                         QuantErrorStats* stats,
                                                         WeightStream* stream) {
  const WeightEntry& w = bundle.weights()[pw.entry];
  std::unique_ptr<WeightStream> own;
  if (stream == nullptr) {
    std::vector<WeightRead> reads;
    AppendReads(pw, reads);
    own = std::make_unique<WeightStream>(bundle, std::move(reads), /*threaded=*/false);
    stream = own.get();
  }
  Result<std::optional<ManifestQuantization>> r = std::optional<ManifestQuantization>();
  switch (pw.quant) {
    case QuantDtype::kUint8:
    case QuantDtype::kUint16:
      r = EncodeAffine(*stream, w, pw.quant, sink, stats);
      break;
    case QuantDtype::kFloat16:
      r = EncodeHalf(*stream, w, sink, stats);
      break;
    case QuantDtype::kNone: {
      Status s = EncodePlain(*stream, w, pw.out, sink);
      if (!s.ok()) r = s;
      break;
    }
  }
  if (!r.ok() && r.status().message().rfind(w.where, 0) != 0) {
    return r.status().WithContext(w.where);
  }
  return r;
}

}  // namespace wd
