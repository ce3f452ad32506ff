#include "core/digest_feed.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace wd {

Result<std::unique_ptr<FileDigestFeed>> FileDigestFeed::Open(const std::string& path,
                                                             const std::string& name) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot read " + path, errno);
  std::unique_ptr<FileDigestFeed> feed(new FileDigestFeed(fd, path));
  struct stat st {};
  if (fstat(fd, &st) != 0) return ErrnoStatus("cannot stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return Status::Bundle(path + ": not a regular file");
  if (!name.empty()) {
    uint8_t le[8];
    const auto size = static_cast<uint64_t>(st.st_size);
    for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(size >> (8 * i));
    feed->hash_.Update(name.c_str(), name.size() + 1);  // with the NUL
    feed->hash_.Update(le, sizeof le);
  }
  return feed;
}

FileDigestFeed::~FileDigestFeed() { close(fd_); }

bool FileDigestFeed::ReadUpTo(uint64_t to, bool to_end) {
  if (!status_.ok()) return false;
  std::vector<uint8_t> buf;
  while (to_end || pos_ < to) {
    const size_t want =
        static_cast<size_t>(to_end ? 256u << 10 : std::min<uint64_t>(to - pos_, 256u << 10));
    buf.resize(want);
    const ssize_t got = pread(fd_, buf.data(), want, static_cast<off_t>(pos_));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      status_ = ErrnoStatus("cannot read " + path_ + " (after " + std::to_string(pos_) + " bytes)",
                            errno);
      return false;
    }
    if (got == 0) {
      if (to_end) return true;
      status_ = Status::Incomplete(path_ + ": shrank while it was read");
      return false;
    }
    hash_.Update(buf.data(), static_cast<size_t>(got));
    pos_ += static_cast<uint64_t>(got);
    read_ += static_cast<uint64_t>(got);
  }
  return true;
}

void FileDigestFeed::Offer(uint64_t offset, const uint8_t* data, size_t n) {
  std::lock_guard<std::mutex> lock(mu_);
  if (offset + n <= pos_) return;  // hashed already
  if (offset > pos_ && !ReadUpTo(offset, false)) return;
  const uint64_t skip = pos_ - offset;  // a piece that straddles pos_
  hash_.Update(data + skip, n - skip);
  pos_ += n - skip;
  offered_ += n - skip;
}

Result<std::string> FileDigestFeed::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ReadUpTo(0, true)) return status_;
  return hash_.HexDigest();
}

}  // namespace wd
