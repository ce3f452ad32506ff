// WeightEncoder: streams one planned weight from its bundle source through
// dtype conversion and quantization into a ByteSink, chunk by chunk, so no
// weight is ever held whole (Fortran-order arrays excepted: see the .cpp).
#pragma once

#include <cstdint>
#include <optional>

#include "core/bundle.h"
#include "core/byte_sink.h"
#include "core/manifest.h"
#include "core/plan.h"
#include "core/status.h"
#include "core/weight_stream.h"

namespace wd {

// Quantization error of one weight, as the client will see it.
struct QuantErrorStats {
  double max_abs = 0;
  double sum_sq = 0;
  uint64_t count = 0;
  double rms() const;
};

// Appends the passes EncodeWeight makes over `pw`'s source (two for affine
// quantization, else one) to `reads`, for a WeightStream over many weights.
void AppendReads(const PlannedWeight& pw, std::vector<WeightRead>& reads);

// Encodes weight `pw` into `sink` (exactly pw.encoded_bytes bytes) and returns
// its manifest quantization entry (nullopt when unquantized). `stats`, if not
// null, receives the dequantization error of quantized weights. The source
// bytes come from `stream`, positioned at pw's reads (AppendReads), or when
// null from a stream of its own read on this thread.
Result<std::optional<ManifestQuantization>> EncodeWeight(const Bundle& bundle,
                                                         const PlannedWeight& pw, ByteSink& sink,
                                                         QuantErrorStats* stats,
                                                         WeightStream* stream = nullptr);

}  // namespace wd
