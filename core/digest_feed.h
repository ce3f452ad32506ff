// FileDigestFeed: the bundle digest of a one-file bundle, fed by the reader
// that reads its weights anyway, so each byte is read from the page cache
// once and hashed while it is still in the CPU's cache (docs/PERFORMANCE.md).
// The reader offers each piece it reads at its offset in the file; a piece
// that comes next in file order is hashed, bytes before it not hashed yet
// (headers, members read out of order) are read here first, and a piece
// already behind is ignored. Finish() reads and hashes the rest. Whatever
// was offered, the result is the digest BundleDigest computes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "core/sha256.h"
#include "core/status.h"

namespace wd {

class FileDigestFeed {
 public:
  // Opens the file at `path` (never through a symlink). `name`, when not
  // empty, is hashed first as BundleDigest does for a file named by its
  // weight: the name, a NUL and the file's size as 8 bytes little-endian.
  static Result<std::unique_ptr<FileDigestFeed>> Open(const std::string& path,
                                                      const std::string& name);
  ~FileDigestFeed();
  FileDigestFeed(const FileDigestFeed&) = delete;
  FileDigestFeed& operator=(const FileDigestFeed&) = delete;

  // Bytes [offset, offset + n) of the file, as the caller read them. Any
  // thread; an error reading a gap is kept for Finish().
  void Offer(uint64_t offset, const uint8_t* data, size_t n);
  // Hashes what is left up to the end of the file and returns the digest.
  // REQUIRES: no Offer() after it.
  Result<std::string> Finish();

  // Bytes hashed from offered pieces and read here (for tests).
  uint64_t offered_bytes() const { return offered_; }
  uint64_t read_bytes() const { return read_; }

 private:
  FileDigestFeed(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  // Hashes [pos_, to) reading the file; false (status_ set) on error.
  bool ReadUpTo(uint64_t to, bool to_end);

  std::mutex mu_;
  const int fd_;
  const std::string path_;
  Sha256 hash_;
  uint64_t pos_ = 0;  // bytes of the file hashed so far
  uint64_t offered_ = 0;
  uint64_t read_ = 0;
  Status status_;
};

}  // namespace wd
