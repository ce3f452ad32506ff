// Fuzz target: pipeline settings YAML (config/pipeline_config.h). Every
// error must be a kConfig "file:line:col: message" naming the file; accepted
// settings must validate and survive the publish.json round trip; the same
// text laid over non-default settings must behave the same way.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/daemon_config.h"
#include "config/pipeline_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

constexpr char kFile[] = "/cfg/pipeline.yaml";

void Check(const wd::Result<wd::PipelineOptions>& r, const char* what) {
  if (!r.ok()) {
    const wd::Status& s = r.status();
    if (s.kind() != wd::ErrorKind::kConfig) wd::fuzz::Fail(std::string(what) + ": not kConfig");
    if (s.message().rfind(kFile, 0) != 0) {
      wd::fuzz::Fail(std::string(what) + ": error does not start with the file: " + s.message());
    }
    return;
  }
  wd::fuzz::CheckSettingsRoundTrip(*r, what);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)wd::LooksLikeDaemonConfig(text);
  Check(wd::ParsePipelineConfig(text, kFile), "ParsePipelineConfig");
  wd::PipelineOptions base;
  base.shard_size = 1000;
  base.grouping.kind = wd::Grouping::Kind::kByPrefix;
  base.grouping.prefix_components = 2;
  base.quantize.patterns.push_back({wd::QuantDtype::kUint8, {"*/kernel"}});
  Check(wd::ParsePipelineConfigOver(text, kFile, base), "ParsePipelineConfigOver");
  return 0;
}
