// ByteSource: a sequential reader of one weight's raw bytes, whether they sit
// in a plain file, a stored zip member or a deflated one. Readers never hold a
// whole weight; they hand out chunks.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace wd {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes into buf; returns the count, 0 only at end of data.
  virtual Result<size_t> Read(uint8_t* buf, size_t n) = 0;
};

// Reads exactly n bytes or fails with kBundle ("<where>: truncated ...", with
// the byte offset reached).
Status ReadExact(ByteSource& src, uint8_t* buf, size_t n, const std::string& where,
                 uint64_t offset_for_message);

// A ByteSource over bytes held in memory (tests, transposed Fortran arrays).
class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::vector<uint8_t> bytes) : bytes_(std::move(bytes)) {}
  Result<size_t> Read(uint8_t* buf, size_t n) override;

 private:
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

// A ByteSource over [offset, offset + length) of an open file descriptor,
// read with pread. Does not own fd unless `owns_fd`.
class FileRegionSource : public ByteSource {
 public:
  FileRegionSource(int fd, uint64_t offset, uint64_t length, std::string where, bool owns_fd);
  ~FileRegionSource() override;
  FileRegionSource(const FileRegionSource&) = delete;
  FileRegionSource& operator=(const FileRegionSource&) = delete;
  Result<size_t> Read(uint8_t* buf, size_t n) override;

 private:
  int fd_;
  uint64_t offset_;
  uint64_t end_;
  std::string where_;
  bool owns_fd_;
};

// Reads `inner` on a thread of its own, up to `depth` chunks of `chunk` bytes
// ahead, so inflating and CRC-checking a member overlap with encoding,
// writing and hashing on the caller's thread. Errors reach the caller after
// the data that preceded them, as with `inner` itself.
class PrefetchSource : public ByteSource {
 public:
  explicit PrefetchSource(std::unique_ptr<ByteSource> inner, size_t chunk = 4u << 20,
                          size_t depth = 3);
  ~PrefetchSource() override;  // stops and joins the reader
  PrefetchSource(const PrefetchSource&) = delete;
  PrefetchSource& operator=(const PrefetchSource&) = delete;
  Result<size_t> Read(uint8_t* buf, size_t n) override;

 private:
  void Run();

  std::unique_ptr<ByteSource> inner_;
  const size_t chunk_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  struct Chunk {
    std::unique_ptr<uint8_t[]> data;  // not zero-filled: it is read into at once
    size_t size = 0;
  };
  std::deque<Chunk> ready_;  // GUARDED_BY(mu_)
  size_t front_pos_ = 0;     // consumed bytes of ready_.front()
  bool eof_ = false;         // GUARDED_BY(mu_)
  bool stop_ = false;        // GUARDED_BY(mu_)
  Status error_;             // GUARDED_BY(mu_)
  std::thread thread_;       // last: starts once the rest exists
};

}  // namespace wd
