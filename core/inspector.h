// Inspector: what a bundle would publish as, weight by weight, without
// writing anything — the plan plus, for quantized weights, the error the
// client will see after dequantizing.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/pipeline_options.h"
#include "core/status.h"

namespace wd {

struct InspectRow {
  std::string name;
  std::string source_dtype;  // NumPy descr, e.g. "<f8"
  std::vector<uint64_t> shape;
  std::string dtype;   // tfjs dtype
  uint64_t bytes = 0;  // encoded
  int group = 0;       // 1-based
  std::string group_label;
  std::string quantization;  // "", "uint8", "uint16", "float16"
  double max_abs_error = 0;
  double rms_error = 0;
};

struct InspectReport {
  std::vector<InspectRow> rows;
  std::vector<std::string> shards;  // planned shard names with sizes
  bool hazard_split = false;
  std::vector<std::string> warnings;  // patterns without effect (UnusedPatternMessage)
};

Result<InspectReport> Inspect(const std::string& bundle_path, const PipelineOptions& options);

}  // namespace wd
