// Sha256: incremental SHA-256 over OpenSSL's EVP interface, for shard and
// manifest digests in publish.json and for bundle identity. Digests are
// lowercase hex strings.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/status.h"

namespace wd {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  // Movable (a moved-from hasher may only be assigned to or destroyed);
  // `h = Sha256();` starts a new digest.
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // Finishes the digest; later calls return the same value and Update is
  // ignored.
  std::string HexDigest();

 private:
  struct State;
  std::unique_ptr<State> state_;
  std::string digest_;
};

std::string Sha256Hex(std::string_view data);

// Hashes the regular file at `path` into `h` (never through a symlink) and
// returns its size. A read error is an error naming the file, never taken
// for the end of the file.
Result<uint64_t> HashFileInto(const std::string& path, Sha256& h);

}  // namespace wd
