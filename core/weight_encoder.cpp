#include "core/weight_encoder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "core/quantizer.h"

namespace wd {
namespace {

// Elements per chunk: 256 Ki elements keeps every buffer at or below 4 MiB
// (strings aside) while amortizing per-call costs.
constexpr size_t kChunkElements = 256 * 1024;
// Weights at least this large get a read-ahead thread.
constexpr uint64_t kPrefetchBytes = 1u << 20;

std::string Describe(const WeightEntry& w) { return w.where + ": weight '" + w.name + "'"; }

// Reorders a Fortran-order array (bytes of `item` each) into C order.
std::vector<uint8_t> FortranToC(const std::vector<uint8_t>& f, const std::vector<uint64_t>& shape,
                                size_t item) {
  std::vector<uint8_t> c(f.size());
  const size_t nd = shape.size();
  std::vector<uint64_t> fstride(nd, 1), idx(nd, 0);
  for (size_t k = 1; k < nd; ++k) fstride[k] = fstride[k - 1] * shape[k - 1];
  const uint64_t count = f.size() / item;
  uint64_t src = 0;  // Fortran offset (in elements) of the current C index
  for (uint64_t out = 0; out < count; ++out) {
    std::memcpy(&c[out * item], &f[src * item], item);
    for (size_t k = nd; k-- > 0;) {  // advance the C-order index, last axis fastest
      if (++idx[k] < shape[k]) {
        src += fstride[k];
        break;
      }
      src -= fstride[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
  return c;
}

// A stream over the weight's elements in C order.
Result<std::unique_ptr<ByteSource>> OpenCOrder(const Bundle& bundle, const WeightEntry& w,
                                               bool check_crc) {
  WD_ASSIGN_OR_RETURN(auto src, bundle.OpenData(w, check_crc));
  if (!w.header.fortran_order || w.header.shape.size() < 2) return src;
  // Transposing needs the whole array; Fortran-order inputs are the one case
  // held in memory (documented in docs/formats.md).
  std::vector<uint8_t> all(w.header.data_bytes);
  WD_RETURN_IF_ERROR(ReadExact(*src, all.data(), all.size(), w.where, w.header.header_size));
  return std::unique_ptr<ByteSource>(
      new MemorySource(FortranToC(all, w.header.shape, w.header.dtype.item_size)));
}

// Calls fn(src_chunk, count, first_index) over `src`, the weight's bytes in
// C order.
template <typename Fn>
Status ForEachChunkFrom(std::unique_ptr<ByteSource> src, const WeightEntry& w, Fn&& fn) {
  // Large weights are read (inflated, CRC-checked) on a second thread while
  // this one converts, writes and hashes.
  if (w.header.data_bytes >= kPrefetchBytes) src = std::make_unique<PrefetchSource>(std::move(src));
  const size_t item = w.header.dtype.item_size;
  const size_t per = std::max<size_t>(1, std::min(kChunkElements, (16u << 20) / item));
  std::vector<uint8_t> buf(static_cast<size_t>(std::min<uint64_t>(per, w.header.element_count)) *
                           item);
  for (uint64_t done = 0; done < w.header.element_count;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(per, w.header.element_count - done));
    WD_RETURN_IF_ERROR(
        ReadExact(*src, buf.data(), n * item, w.where, w.header.header_size + done * item));
    WD_RETURN_IF_ERROR(fn(buf.data(), n, done));
    done += n;
  }
  return Status::Ok();
}

// ForEachChunkFrom over the weight as the bundle holds it.
template <typename Fn>
Status ForEachChunk(const Bundle& bundle, const WeightEntry& w, Fn&& fn, bool check_crc = true) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, OpenCOrder(bundle, w, check_crc));
  return ForEachChunkFrom(std::move(src), w, std::forward<Fn>(fn));
}

// One weight's C-order source bytes in an unlinked temporary file, so a
// deflated member is inflated once although affine quantization reads it
// twice. Disk-backed ($TMPDIR or /tmp): memory stays bounded. If the file
// cannot be made or written, the second pass inflates again instead.
class ScratchFile {
 public:
  static std::unique_ptr<ScratchFile> Create() {
    const char* dir = std::getenv("TMPDIR");
    const int fd =
        open(dir != nullptr && *dir != '\0' ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return nullptr;
    return std::unique_ptr<ScratchFile>(new ScratchFile(fd));
  }
  ~ScratchFile() { close(fd_); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  void Append(const uint8_t* p, size_t n) {
    while (ok_ && n > 0) {
      const ssize_t k = write(fd_, p, n);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        ok_ = false;
        break;
      }
      p += k;
      n -= static_cast<size_t>(k);
      size_ += static_cast<uint64_t>(k);
    }
  }
  bool ok() const { return ok_; }
  std::unique_ptr<ByteSource> Reader(const std::string& where) const {
    return std::make_unique<FileRegionSource>(fd_, 0, size_, where, false);
  }

 private:
  explicit ScratchFile(int fd) : fd_(fd) {}
  int fd_;
  uint64_t size_ = 0;
  bool ok_ = true;
};

// Converts a chunk of source elements to float32 (the weight maps to float32).
Status ToFloats(const WeightEntry& w, const uint8_t* src, size_t n, uint64_t first,
                std::vector<float>& out) {
  out.resize(n);
  return ConvertElements(w.header.dtype, src, n, reinterpret_cast<uint8_t*>(out.data()), w.name,
                         first);
}

// True when any of f[0..n) is NaN or infinite. Branch-free so it vectorizes.
bool AnyNonFinite(const float* f, size_t n) {
  uint32_t any = 0;
  for (size_t i = 0; i < n; ++i) {
    any |= static_cast<uint32_t>((std::bit_cast<uint32_t>(f[i]) & 0x7f800000u) == 0x7f800000u);
  }
  return any != 0;
}

// Folds f[0..n) (finite values) into mn/mx. Independent lanes instead of one
// running min: GCC vectorizes lanes, but not a float min reduction without
// fast-math. Which zero wins between -0.0 and +0.0 may differ from a
// sequential scan, as it does between NumPy's own SIMD paths.
void MinMax(const float* f, size_t n, float& mn, float& mx) {
  constexpr size_t kLanes = 16;
  float lo[kLanes], hi[kLanes];
  std::fill(lo, lo + kLanes, mn);
  std::fill(hi, hi + kLanes, mx);
  size_t i = 0;
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

// Min and max of the weight (refusing NaN/Inf). `keep`, if given, receives
// the bytes read, for the second pass.
Result<AffineParams> AffineFor(const Bundle& bundle, const WeightEntry& w, QuantDtype q,
                               ScratchFile* keep) {
  float mn = std::numeric_limits<float>::infinity(), mx = -mn;
  std::vector<float> f;
  WD_RETURN_IF_ERROR(ForEachChunk(bundle, w, [&](const uint8_t* s, size_t n, uint64_t first) {
    if (keep != nullptr) keep->Append(s, n * w.header.dtype.item_size);
    WD_RETURN_IF_ERROR(ToFloats(w, s, n, first, f));
    if (AnyNonFinite(f.data(), n)) {
      const size_t i =
          static_cast<size_t>(std::find_if(f.begin(), f.begin() + static_cast<ptrdiff_t>(n),
                                           [](float x) { return !std::isfinite(x); }) -
                              f.begin());
      return Status::Bundle(Describe(w) + ": element " + std::to_string(first + i) + " is " +
                            (std::isnan(f[i]) ? "NaN" : "infinite") + "; " + QuantDtypeName(q) +
                            " quantization needs finite values");
    }
    MinMax(f.data(), n, mn, mx);
    return Status::Ok();
  }));
  if (w.header.element_count == 0) mn = mx = 0;
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
  const double e = std::fabs(static_cast<double>(decoded) - original);
  stats->max_abs = std::max(stats->max_abs, e);
  stats->sum_sq += e * e;
  ++stats->count;
}

Result<std::optional<ManifestQuantization>> EncodeAffine(const Bundle& bundle, const WeightEntry& w,
                                                         QuantDtype q, ByteSink& sink,
                                                         QuantErrorStats* stats) {
  std::unique_ptr<ScratchFile> scratch = bundle.IsCompressed(w) ? ScratchFile::Create() : nullptr;
  WD_ASSIGN_OR_RETURN(AffineParams p, AffineFor(bundle, w, q, scratch.get()));
  const size_t width = q == QuantDtype::kUint8 ? 1 : 2;
  std::vector<float> f;
  std::vector<uint8_t> out;
  auto quantize = [&](const uint8_t* s, size_t n, uint64_t first) {
    WD_RETURN_IF_ERROR(ToFloats(w, s, n, first, f));
    out.resize(n * width);
    QuantizeAffine(f.data(), n, p, q, out.data());
    if (stats != nullptr) {
      for (size_t i = 0; i < n; ++i) {
        const uint32_t v = width == 1 ? out[i] : out[2 * i] | (out[2 * i + 1] << 8);
        AddError(stats, f[i], DequantizeAffine(v, p));
      }
    }
    return sink.Append(out.data(), out.size());
  };
  // Second pass: from the scratch copy, or again from the bundle (a stored
  // member raw: the min/max pass checked its CRC).
  WD_RETURN_IF_ERROR(scratch != nullptr && scratch->ok()
                         ? ForEachChunkFrom(scratch->Reader(w.where), w, quantize)
                         : ForEachChunk(bundle, w, quantize, /*check_crc=*/false));
  return std::optional(ManifestQuantization{.dtype = q, .min = p.min, .scale = p.scale});
}

Result<std::optional<ManifestQuantization>> EncodeHalf(const Bundle& bundle, const WeightEntry& w,
                                                       ByteSink& sink, QuantErrorStats* stats) {
  std::vector<float> f;
  std::vector<uint8_t> out;
  WD_RETURN_IF_ERROR(ForEachChunk(bundle, w, [&](const uint8_t* s, size_t n, uint64_t first) {
    WD_RETURN_IF_ERROR(ToFloats(w, s, n, first, f));
    uint32_t overflow = 0;  // branch-free so it vectorizes
    for (size_t i = 0; i < n; ++i) overflow |= static_cast<uint32_t>(HalfOverflows(f[i]));
    for (size_t i = 0; overflow != 0 && i < n; ++i) {
      if (HalfOverflows(f[i])) {
        return Status::Bundle(Describe(w) + ": element " + std::to_string(first + i) + " is " +
                              std::to_string(f[i]) +
                              ", beyond float16's range (|x| >= 65520 rounds to infinity)");
      }
    }
    out.resize(n * 2);
    FloatsToHalves(f.data(), n, out.data());
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

Status EncodePlain(const Bundle& bundle, const WeightEntry& w, OutDtype out, ByteSink& sink) {
  std::vector<uint8_t> buf;
  std::string strings;
  return ForEachChunk(bundle, w, [&](const uint8_t* s, size_t n, uint64_t first) -> Status {
    if (out == OutDtype::kString) {
      strings.clear();
      WD_RETURN_IF_ERROR(AppendEncodedStrings(w.header.dtype, s, n, strings, w.name, first));
      return sink.Append(reinterpret_cast<const uint8_t*>(strings.data()), strings.size());
    }
    buf.resize(n * OutElementSize(out));
    WD_RETURN_IF_ERROR(ConvertElements(w.header.dtype, s, n, buf.data(), w.name, first));
    return sink.Append(buf.data(), buf.size());
  });
}

}  // namespace

double QuantErrorStats::rms() const { return count == 0 ? 0 : std::sqrt(sum_sq / count); }

Result<std::optional<ManifestQuantization>> EncodeWeight(const Bundle& bundle,
                                                         const PlannedWeight& pw, ByteSink& sink,
                                                         QuantErrorStats* stats) {
  const WeightEntry& w = bundle.weights()[pw.entry];
  Result<std::optional<ManifestQuantization>> r = std::optional<ManifestQuantization>();
  switch (pw.quant) {
    case QuantDtype::kUint8:
    case QuantDtype::kUint16:
      r = EncodeAffine(bundle, w, pw.quant, sink, stats);
      break;
    case QuantDtype::kFloat16:
      r = EncodeHalf(bundle, w, sink, stats);
      break;
    case QuantDtype::kNone: {
      Status s = EncodePlain(bundle, w, pw.out, sink);
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
