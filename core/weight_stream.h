// WeightStream: the source bytes of a planned sequence of weight reads, in C
// order, chunk by chunk. Threaded, it reads (inflates, CRC-checks) ahead on a
// thread of its own across weight boundaries, so reading overlaps encoding,
// writing and hashing on the caller's thread; inline, it reads on demand.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "core/bundle.h"
#include "core/status.h"

namespace wd {

class ScratchFile;

// One pass over one weight. Affine quantization reads a weight twice: the
// second pass reads a stored member raw (its CRC was checked by the first)
// and a deflated one from the scratch copy the first pass kept.
struct WeightRead {
  size_t entry = 0;  // index into bundle.weights()
  bool second_pass = false;
  bool keep_for_second = false;  // first pass: keep a deflated member's bytes
};

class WeightStream {
 public:
  // "bundle" must outlive the stream. `threaded` false reads on the caller's
  // thread inside Next(). At most about `ahead_bytes` are buffered.
  WeightStream(const Bundle& bundle, std::vector<WeightRead> reads, bool threaded,
               size_t ahead_bytes = 8u << 20);
  ~WeightStream();  // stops and joins the reader
  WeightStream(const WeightStream&) = delete;
  WeightStream& operator=(const WeightStream&) = delete;

  // The next chunk (whole elements) of the current read, valid until the
  // next call; an empty span ends that read and the following call starts the
  // next one. Errors arrive after the data that preceded them.
  // REQUIRES: one consumer thread; reads consumed in the order given.
  Result<std::span<const uint8_t>> Next();

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;
    size_t size = 0;  // 0: end of a read
    size_t capacity = 0;
  };
  void Run();
  // Reads the next chunk (or the end marker) of the reads into `out`;
  // false once every read is done. Runs on the reader (or, inline, the
  // consumer's) thread.
  Result<bool> ProduceOne(Chunk& out);
  Status OpenRead(const WeightRead& r);
  Chunk TakeBuffer(size_t capacity);

  const Bundle& bundle_;
  const std::vector<WeightRead> reads_;
  const bool threaded_;
  const size_t ahead_bytes_;
  // Producer state (reader thread, or the consumer's when inline).
  size_t read_ = 0;                       // the read being produced
  std::unique_ptr<ByteSource> src_;       // its bytes; null before it opens
  uint64_t produced_ = 0;                 // its elements produced so far
  std::unique_ptr<ScratchFile> scratch_;  // a deflated weight's first-pass copy

  Chunk current_;  // consumer's: the chunk last returned

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Chunk> ready_;   // GUARDED_BY(mu_)
  std::vector<Chunk> spare_;  // GUARDED_BY(mu_): buffers to reuse
  size_t queued_bytes_ = 0;   // GUARDED_BY(mu_)
  bool done_ = false;         // GUARDED_BY(mu_): reader finished or failed
  bool stop_ = false;         // GUARDED_BY(mu_)
  Status error_;              // GUARDED_BY(mu_)
  std::thread thread_;        // last: starts once the rest exists
};

}  // namespace wd
