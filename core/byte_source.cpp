#include "core/byte_source.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace wd {

Status ReadExact(ByteSource& src, uint8_t* buf, size_t n, const std::string& where,
                 uint64_t offset_for_message) {
  size_t got = 0;
  while (got < n) {
    WD_ASSIGN_OR_RETURN(size_t r, src.Read(buf + got, n - got));
    if (r == 0) {
      return Status::Bundle(where + ": truncated: needed " + std::to_string(n) + " bytes at byte " +
                            std::to_string(offset_for_message) + " but the data ends at byte " +
                            std::to_string(offset_for_message + got));
    }
    got += r;
  }
  return Status::Ok();
}

Result<size_t> MemorySource::Read(uint8_t* buf, size_t n) {
  size_t k = std::min(n, bytes_.size() - pos_);
  if (k > 0) std::memcpy(buf, bytes_.data() + pos_, k);
  pos_ += k;
  return k;
}

FileRegionSource::FileRegionSource(int fd, uint64_t offset, uint64_t length, std::string where,
                                   bool owns_fd)
    : fd_(fd),
      offset_(offset),
      end_(offset + length),
      where_(std::move(where)),
      owns_fd_(owns_fd) {}

FileRegionSource::~FileRegionSource() {
  if (owns_fd_ && fd_ >= 0) ::close(fd_);
}

// Fills as much of buf as the region allows; a file that ends before the
// region does is an error (it shrank after it was indexed), never a short EOF.
Result<size_t> FileRegionSource::Read(uint8_t* buf, size_t n) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(n, end_ - offset_));
  size_t got = 0;
  while (got < want) {
    ssize_t r = ::pread(fd_, buf + got, want - got, static_cast<off_t>(offset_));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(where_ + ": read at byte " + std::to_string(offset_), errno);
    }
    if (r == 0) {
      return Status::Bundle(where_ + ": file ends at byte " + std::to_string(offset_) + " but " +
                            std::to_string(end_) +
                            " bytes were expected (did it shrink while being read?)");
    }
    got += static_cast<size_t>(r);
    offset_ += static_cast<uint64_t>(r);
  }
  return got;
}

}  // namespace wd
