// The daemon's two clocks: a monotonic one in milliseconds for timers and
// ages, and Unix seconds for what status reports.
#pragma once

#include <chrono>
#include <cstdint>

namespace wd {

inline int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

inline int64_t UnixSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wd
