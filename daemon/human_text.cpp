#include "daemon/human_text.h"

#include <cmath>
#include <cstdio>
#include <iterator>

namespace wd {
namespace {

// `v` in the largest unit of 1024 it reaches, "%.1f" below 100 and "%.0f"
// above when `trim` (a rate), always "%.1f" otherwise.
std::string Scaled(double v, bool trim, const char* suffix) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[48];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%.0f B%s", v, suffix);
  } else {
    std::snprintf(buf, sizeof buf, trim && v >= 99.95 ? "%.0f %s%s" : "%.1f %s%s", v, kUnits[unit],
                  suffix);
  }
  return buf;
}

}  // namespace

std::string HumanBytes(uint64_t bytes) { return Scaled(static_cast<double>(bytes), false, ""); }

std::string HumanRate(double bytes_per_second) {
  if (!std::isfinite(bytes_per_second) || bytes_per_second < 0) bytes_per_second = 0;
  return Scaled(bytes_per_second, true, "/s");
}

std::string HumanDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  char buf[48];
  if (seconds < 0.9995) {
    std::snprintf(buf, sizeof buf, "%.0f ms", seconds * 1000);
  } else if (seconds < 59.95) {
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  } else if (seconds < 3599.5) {
    const auto s = static_cast<long long>(std::llround(seconds));
    std::snprintf(buf, sizeof buf, "%lld min %lld s", s / 60, s % 60);
  } else {
    const auto m = static_cast<long long>(std::llround(seconds / 60));
    std::snprintf(buf, sizeof buf, "%lld h %lld min", m / 60, m % 60);
  }
  return buf;
}

std::string Counted(uint64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace wd
