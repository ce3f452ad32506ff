// WeightStream: the source bytes of a planned sequence of weight reads, in C
// order, chunk by chunk. Threaded, it reads (inflates, CRC-checks) ahead on
// threads of its own across weight boundaries, so reading overlaps encoding,
// writing and hashing on the caller's thread; a bundle with deflated members
// is inflated on two threads, alternate weights each. Inline, it reads on
// demand on the caller's thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "core/bundle.h"
#include "core/status.h"

namespace wd {

class FileDigestFeed;
class ScratchFile;

// One pass over one weight. Affine quantization reads a weight twice: the
// second pass reads a stored member raw (its CRC was checked by the first)
// and a deflated one from the scratch copy the first pass kept. Both passes
// of a weight must be consecutive.
struct WeightRead {
  size_t entry = 0;  // index into bundle.weights()
  bool second_pass = false;
  bool keep_for_second = false;  // first pass: keep a deflated member's bytes
};

// What each reading thread buffers ahead of the consumer by default.
constexpr size_t kReadAheadBytes = 12u << 20;

class WeightStream {
 public:
  // "bundle" must outlive the stream. `threaded` false reads on the caller's
  // thread inside Next(). Each reading thread buffers about `ahead_bytes`.
  // `feed`, if set (a one-file bundle; it must outlive the stream), is
  // offered every byte a first pass reads raw from the file, as it is read.
  WeightStream(const Bundle& bundle, std::vector<WeightRead> reads, bool threaded,
               size_t ahead_bytes = kReadAheadBytes, FileDigestFeed* feed = nullptr);
  ~WeightStream();  // stops and joins the readers
  WeightStream(const WeightStream&) = delete;
  WeightStream& operator=(const WeightStream&) = delete;

  // The next chunk (whole elements) of the current read, valid until the
  // next call; an empty span ends that read and the following call starts the
  // next one. Errors arrive after the data that preceded them.
  // REQUIRES: one consumer thread; reads consumed in the order given.
  Result<std::span<const uint8_t>> Next();

  // Reading threads in use (0 inline).
  size_t reader_threads() const { return threaded_ ? lanes_.size() : 0; }

 private:
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;
    size_t size = 0;  // data == nullptr: end of a read
    size_t capacity = 0;
  };
  // One reader: the reads whose lane_of_ is its index, in order, through a
  // Bundle of its own (lane 0: the caller's).
  struct Lane {
    uint8_t index = 0;
    const Bundle* bundle = nullptr;
    std::unique_ptr<Bundle> own;
    size_t read = 0;                       // next read to produce
    std::unique_ptr<ByteSource> src;       // the open read; null between reads
    uint64_t produced = 0;                 // its elements produced so far
    std::optional<uint64_t> raw_at;        // the open read's file offset, to feed
    std::unique_ptr<ScratchFile> scratch;  // a deflated weight's first-pass copy
    std::deque<Chunk> ready;               // GUARDED_BY(mu_)
    std::vector<Chunk> spare;              // GUARDED_BY(mu_): buffers to reuse
    size_t queued_bytes = 0;               // GUARDED_BY(mu_)
    bool done = false;                     // GUARDED_BY(mu_): finished or failed
    Status error;                          // GUARDED_BY(mu_)
    std::thread thread;
  };

  void Run(Lane& lane);
  // Reads the lane's next chunk (or end-of-read marker) into `out`; false
  // once the lane has produced all its reads.
  Result<bool> ProduceOne(Lane& lane, Chunk& out);
  Status OpenRead(Lane& lane, const WeightRead& r);
  Chunk TakeBuffer(Lane& lane, size_t capacity);

  const std::vector<WeightRead> reads_;
  const bool threaded_;
  const size_t ahead_bytes_;
  FileDigestFeed* const feed_;
  std::vector<uint8_t> lane_of_;  // per read
  size_t consumed_read_ = 0;      // consumer's: the read Next() is in
  Chunk current_;                 // consumer's: the chunk last returned
  uint8_t current_lane_ = 0;      // consumer's: the lane current_ came from

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::vector<std::unique_ptr<Lane>> lanes_;
};

}  // namespace wd
