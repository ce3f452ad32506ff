// ByteSink: where encoded bytes go, chunk by chunk (a shard writer, a
// counter, a progress reporter in front of either).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

namespace wd {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual Status Append(const uint8_t* data, size_t n) = 0;
};

// A ByteSink that only counts (inspect, dry runs).
class CountingSink : public ByteSink {
 public:
  Status Append(const uint8_t*, size_t n) override {
    bytes += n;
    return Status::Ok();
  }
  uint64_t bytes = 0;
};

}  // namespace wd
