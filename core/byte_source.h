// ByteSource: a sequential reader of one weight's raw bytes, whether they sit
// in a plain file, a stored zip member or a deflated one. Readers never hold a
// whole weight; they hand out chunks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
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

}  // namespace wd
