// Fuzz target: the daemon configuration YAML (config/daemon_config.h). Every
// error must be a kConfig "file:line:col: message" naming the file; an
// accepted config must hold absolute, normal paths, durations in range, and
// pipeline settings (defaults and every watch's) that validate and survive
// the publish.json round trip. The text is also tried as a duration.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

#include "config/daemon_config.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using wd::fuzz::Fail;

constexpr char kFile[] = "/etc/weightdrop/fuzz.yaml";
constexpr wd::Millis kMaxDuration{8760LL * 3600 * 1000};

void CheckPath(const std::string& p, const char* what) {
  const std::filesystem::path path(p);
  if (!path.is_absolute()) Fail(std::string(what) + " is not absolute: " + p);
  if (path.lexically_normal() != path) Fail(std::string(what) + " is not normal: " + p);
}

void CheckDuration(wd::Millis d, const char* what) {
  if (d.count() < 0 || d > kMaxDuration) Fail(std::string(what) + " out of range");
}

void CheckAccepted(const wd::DaemonConfig& c) {
  CheckPath(c.state_dir, "state_dir");
  CheckDuration(c.shutdown_timeout, "shutdown_timeout");
  wd::fuzz::CheckSettingsRoundTrip(c.defaults, "defaults");
  for (const wd::WatchConfig& w : c.watches) {
    CheckPath(w.drop, "drop");
    CheckPath(w.serve, "serve");
    CheckDuration(w.settle, "settle");
    CheckDuration(w.rescan, "rescan");
    CheckDuration(w.hooks.timeout, "hook timeout");
    if (w.keep_versions < 1) Fail("keep_versions < 1 accepted");
    wd::fuzz::CheckSettingsRoundTrip(w.options, "watch settings");
    auto model = wd::ExpandModelTemplate(w.model, "m.npz", w.drop);
    if (!model.ok() && model.status().kind() != wd::ErrorKind::kBundle) {
      Fail("an accepted model template does not expand: " + model.status().message());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)wd::LooksLikeDaemonConfig(text);
  auto config = wd::ParseDaemonConfig(text, kFile);
  if (config.ok()) {
    CheckAccepted(*config);
  } else {
    if (config.status().kind() != wd::ErrorKind::kConfig) Fail("daemon config error not kConfig");
    if (config.status().message().rfind(kFile, 0) != 0) {
      Fail("error does not start with the file: " + config.status().message());
    }
  }
  if (size <= 64) {
    auto d = wd::ParseDuration(text);
    if (d.ok()) CheckDuration(*d, "ParseDuration");
  }
  return 0;
}
