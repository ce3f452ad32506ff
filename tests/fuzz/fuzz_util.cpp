#include "tests/fuzz/fuzz_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "core/options_json.h"

namespace wd::fuzz {
namespace {

std::string ScratchParent() {
  if (const char* d = std::getenv("WD_FUZZ_TMPDIR"); d != nullptr && *d != '\0') return d;
  if (access("/dev/shm", W_OK) == 0) return "/dev/shm";  // fsync costs nothing there
  return "/tmp";
}

void RemoveScratch() {
  std::error_code ec;
  std::filesystem::remove_all(ScratchDir(), ec);
}

}  // namespace

const std::string& ScratchDir() {
  static const std::string dir = [] {
    std::string tmpl = ScratchParent() + "/weightdrop-fuzz.XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) Fail("cannot make a scratch folder under " + tmpl);
    return tmpl;
  }();
  static const bool registered = std::atexit(RemoveScratch) == 0;
  (void)registered;
  return dir;
}

void Fail(std::string_view message) {
  std::fprintf(stderr, "weightdrop fuzz: %.*s\n", static_cast<int>(message.size()), message.data());
  std::abort();
}

void WriteFileOrDie(const std::string& path, const uint8_t* data, size_t size) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) Fail("cannot create " + path);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = write(fd, data + done, size - done);
    if (n <= 0) Fail("cannot write " + path);
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) Fail("cannot close " + path);
}

void RemoveOrDie(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) Fail("cannot remove " + path + ": " + ec.message());
}

int OpenFdCount() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) Fail("cannot list /proc/self/fd");
  int n = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the listing's own descriptor
}

void CheckNoFdLeak(int before) {
  const int after = OpenFdCount();
  if (after <= before) return;
  std::string open_now;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    std::error_code lec;
    open_now += "\n  " + e.path().filename().string() + " -> " +
                std::filesystem::read_symlink(e.path(), lec).string();
  }
  Fail("descriptor leak: " + std::to_string(before) + " open before the run, " +
       std::to_string(after) + " after; open now:" + open_now);
}

void CheckSettingsRoundTrip(const PipelineOptions& options, std::string_view what) {
  const std::string w(what);
  if (Status st = ValidatePipelineOptions(options); !st.ok()) {
    Fail(w + ": accepted settings that do not validate: " + st.message());
  }
  // As core/publisher.cpp writes publish.json: invalid UTF-8 is replaced.
  const std::string written =
      OptionsToJson(options).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
  const auto read = nlohmann::json::parse(written, nullptr, /*allow_exceptions=*/false);
  if (read.is_discarded()) Fail(w + ": settings written to publish.json do not parse");
  Result<PipelineOptions> back = OptionsFromJson(read);
  if (!back.ok()) Fail(w + ": settings do not read back: " + back.status().message());
  const std::string before = CanonicalOptions(options), after = CanonicalOptions(*back);
  if (before != after) {
    Fail(w + ": settings change through publish.json:\n  " + before + "\n  " + after);
  }
}

}  // namespace wd::fuzz
