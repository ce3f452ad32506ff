// NpzArchive: the members of a .npz (a zip written by np.savez or
// np.savez_compressed): libzip reads the archive (zip64, data descriptors),
// core/inflate the member data, stored or deflated, CRC checked. A member can
// never inflate past what its header declares: readers stop at the declared
// size and treat more as an error.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/byte_source.h"
#include "core/status.h"

struct zip;

namespace wd {

struct NpzMember {
  std::string name;    // as stored, e.g. "dense/kernel.npy"
  uint64_t index = 0;  // libzip index
  uint64_t size = 0;   // declared uncompressed size
  uint64_t comp_size = 0;
  bool stored = false;  // compression method 0
  uint32_t crc = 0;     // CRC-32 of the uncompressed bytes, from the central directory
  // Where the member's (compressed) bytes start in the file, from its local
  // header; kUnknownOffset when the headers could not be read for it.
  uint64_t data_start = kUnknownOffset;
  static constexpr uint64_t kUnknownOffset = ~uint64_t{0};
};

class NpzArchive {
 public:
  // Opens `fd` (ownership taken) as a zip. `where` names the file in messages.
  // A file without its central directory yet is kIncomplete.
  static Result<std::unique_ptr<NpzArchive>> Open(int fd, const std::string& where);
  ~NpzArchive();
  NpzArchive(const NpzArchive&) = delete;
  NpzArchive& operator=(const NpzArchive&) = delete;

  // Members in central-directory order (the order np.savez wrote them).
  const std::vector<NpzMember>& members() const { return members_; }

  // Streams member `m`'s uncompressed bytes: exactly m.size bytes, then EOF.
  // Fails (kBundle) on CRC mismatch, on data beyond the declared size, or on a
  // short member. The archive must outlive the returned source.
  Result<std::unique_ptr<ByteSource>> OpenMember(const NpzMember& m) const;

  // Bytes [start, start + length) of stored member `m` read straight from
  // the file, without the CRC check: only for a member already read once
  // with it (the second pass of affine quantization). REQUIRES: m.stored,
  // start > 0 (libzip checks the CRC of whole-member reads only).
  Result<std::unique_ptr<ByteSource>> OpenStoredRange(const NpzMember& m, uint64_t start,
                                                      uint64_t length) const;

  const std::string& where() const { return where_; }

  // A second, independent handle on the same file (same inode, through
  // /proc/self/fd), for reading members on another thread: one handle must
  // not be read from two threads. Fails if the members differ.
  Result<std::unique_ptr<NpzArchive>> Reopen() const;

 private:
  NpzArchive() = default;
  zip* zip_ = nullptr;
  int file_fd_ = -1;  // a duplicate of the fd libzip reads, to reopen from
  std::string where_;
  std::vector<NpzMember> members_;
};

}  // namespace wd
