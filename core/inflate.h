// Raw deflate streams (RFC 1951) and zip's CRC-32, for reading .npz members:
// Intel ISA-L where the build found it (CMake WD_ISAL; 2-3x zlib's inflate,
// a PCLMUL CRC-32), zlib otherwise. With ISA-L both are compiled in, so the
// tests run each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/status.h"

namespace wd {

enum class InflateImpl { kIsal, kZlib };

const char* InflateImplName(InflateImpl impl);  // "ISA-L", "zlib"
bool HaveIsal();                                // built with ISA-L

// What new .npz readers use: ISA-L when built with it, else zlib.
InflateImpl ActiveInflateImpl();
// For tests, to run both. REQUIRES: no other thread opens members meanwhile;
// `impl` is kIsal only if HaveIsal().
void SetActiveInflateImpl(InflateImpl impl);

// CRC-32 as zip and gzip define it; chains like zlib's crc32 (start at 0).
uint32_t Crc32(InflateImpl impl, uint32_t crc, const uint8_t* data, size_t n);

// One raw deflate stream, inflated in pieces: memory stays bounded (the
// 32 KiB window and tables) whatever the stream holds.
class Inflater {
 public:
  static std::unique_ptr<Inflater> Create(InflateImpl impl);
  virtual ~Inflater() = default;

  struct Step {
    size_t consumed = 0;  // bytes taken from `in`
    size_t produced = 0;  // bytes written to `out`
    bool ended = false;   // the final block is done and all its output handed out
  };
  // Inflates from in[0, in_n) into out[0, out_n), never writing past out_n.
  // Fails (kBundle, no context: the caller names the stream) on corrupt data.
  // REQUIRES: out_n > 0; not called again after a Step with `ended`.
  virtual Result<Step> Inflate(const uint8_t* in, size_t in_n, uint8_t* out, size_t out_n) = 0;
};

}  // namespace wd
