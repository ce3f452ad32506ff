// Fuzz target: a bundle's model.json (core/model_json.h). The input is the
// file's text. CheckModelJson must agree with nlohmann's parser (within the
// depth limit); for accepted text ModelJsonWithManifest must give JSON that
// is the original with "weightsManifest" set, byte for byte when the key was
// absent; ReadModelJson must read back exactly what CheckModelJson accepts,
// leaving no descriptor open.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/manifest.h"
#include "core/model_json.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using nlohmann::json;
using wd::fuzz::Fail;

// Objects and arrays open at the deepest point, the root counting 1 (as
// CheckModelJson counts). Iterative: the input may nest deeply.
int Depth(const json& root) {
  int deepest = 0;
  std::vector<std::pair<const json*, int>> pending{{&root, 1}};
  while (!pending.empty()) {
    auto [j, d] = pending.back();
    pending.pop_back();
    if (!j->is_structured()) continue;
    deepest = std::max(deepest, d);
    for (const json& child : *j) pending.push_back({&child, d + 1});
  }
  return deepest;
}

const std::string& ManifestText() {
  static const std::string text = [] {
    wd::ManifestWeight w{.name = "dense/kernel\xc3\xa9", .shape = {2, 3}, .dtype = "float32"};
    w.quantization =
        wd::ManifestQuantization{.dtype = wd::QuantDtype::kUint8, .min = -1.5, .scale = 0.01};
    return wd::ManifestToJson(
        {wd::ManifestGroup{.paths = {"group1-shard1of1.bin"}, .weights = {w}}});
  }();
  return text;
}

void CheckSplice(std::string_view text, const json& parsed) {
  auto out = wd::ModelJsonWithManifest(text, ManifestText(), "model.json");
  if (!out.ok()) Fail("splice refuses checked text: " + out.status().message());
  if (wd::Status s = wd::CheckModelJson(*out, "out"); !s.ok()) {
    Fail("spliced model.json does not check: " + s.message());
  }
  json result = json::parse(*out, nullptr, /*allow_exceptions=*/false);
  if (!result.is_object()) Fail("spliced model.json is not an object");
  if (result["weightsManifest"] != json::parse(ManifestText())) {
    Fail("spliced weightsManifest is not the manifest");
  }
  json original = parsed;
  const bool had_key = original.contains("weightsManifest");
  original.erase("weightsManifest");
  result.erase("weightsManifest");
  if (original != result) Fail("splice changed a key other than weightsManifest");
  if (!had_key) {
    // Only the member was added: removing it gives the original bytes back.
    for (const std::string sep : {", ", ""}) {
      const std::string added = sep + "\"weightsManifest\": " + ManifestText();
      const size_t at = out->find(added);
      if (at != std::string::npos && std::string(*out).erase(at, added.size()) == text) {
        return;
      }
    }
    Fail("splice changed bytes of a model.json without weightsManifest");
  }
}

void CheckRead(std::string_view text, bool accepted) {
  const std::string path = wd::fuzz::ScratchDir() + "/model.json";
  wd::fuzz::WriteFileOrDie(path, reinterpret_cast<const uint8_t*>(text.data()), text.size());
  auto read = wd::ReadModelJson(path);
  if (read.ok() != accepted) Fail("ReadModelJson and CheckModelJson disagree");
  if (read.ok() && *read != text) Fail("ReadModelJson changed the text");
  if (!read.ok() && read.status().kind() != wd::ErrorKind::kBundle) {
    Fail("ReadModelJson error is not the bundle's fault: " + read.status().message());
  }
  wd::fuzz::RemoveOrDie(path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fds_before = wd::fuzz::OpenFdCount();
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const wd::Status checked = wd::CheckModelJson(text, "model.json");
  const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  const bool object = !parsed.is_discarded() && parsed.is_object();
  if (checked.ok() && !object) Fail("CheckModelJson accepts what is not a JSON object");
  if (!checked.ok() && object && Depth(parsed) <= wd::kMaxModelJsonDepth) {
    Fail("CheckModelJson refuses a JSON object within the depth limit: " + checked.message());
  }
  if (!checked.ok() && checked.message().rfind("model.json: ", 0) != 0) {
    Fail("error does not name the file: " + checked.message());
  }
  if (checked.ok()) CheckSplice(text, parsed);
  CheckRead(text, checked.ok());
  wd::fuzz::CheckNoFdLeak(fds_before);
  return 0;
}
