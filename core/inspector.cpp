#include "core/inspector.h"

#include "core/bundle.h"
#include "core/byte_sink.h"
#include "core/element_codec.h"
#include "core/plan.h"
#include "core/weight_encoder.h"

namespace wd {

Result<InspectReport> Inspect(const std::string& bundle_path, const PipelineOptions& options) {
  WD_ASSIGN_OR_RETURN(auto bundle, Bundle::Open(bundle_path));
  WD_ASSIGN_OR_RETURN(Plan plan, MakePlan(*bundle, options));
  InspectReport report;
  report.hazard_split = plan.hazard_split;
  for (const UnusedPattern& u : plan.unused_patterns) {
    report.warnings.push_back(UnusedPatternMessage(u));
  }
  for (size_t gi = 0; gi < plan.groups.size(); ++gi) {
    const PlannedGroup& g = plan.groups[gi];
    for (const PlannedWeight& pw : g.weights) {
      const WeightEntry& w = bundle->weights()[pw.entry];
      InspectRow row{.name = w.name,
                     .source_dtype = w.dtype.descr,
                     .shape = w.shape,
                     .dtype = OutDtypeName(pw.out),
                     .bytes = pw.encoded_bytes,
                     .group = static_cast<int>(gi + 1),
                     .group_label = g.label,
                     .quantization = "",
                     .max_abs_error = 0,
                     .rms_error = 0};
      // Quantized weights are encoded for their error; those whose
      // conversion checks values, so inspect refuses what publish would.
      QuantErrorStats stats;
      if (pw.quant != QuantDtype::kNone || ConversionChecksValues(w.dtype)) {
        CountingSink sink;
        WD_ASSIGN_OR_RETURN(auto q, EncodeWeight(*bundle, pw, sink, &stats));
        (void)q;
      }
      if (pw.quant != QuantDtype::kNone) {
        row.quantization = QuantDtypeName(pw.quant);
        row.max_abs_error = stats.max_abs;
        row.rms_error = stats.rms();
      }
      report.rows.push_back(std::move(row));
    }
    for (const auto& s : g.shards) {
      report.shards.push_back(s.name + " (" + std::to_string(s.bytes) + " bytes)");
    }
  }
  return report;
}

}  // namespace wd
