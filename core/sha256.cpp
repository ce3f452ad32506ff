#include "core/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace wd {

struct Sha256::State {
  ~State() { EVP_MD_CTX_free(ctx); }
  EVP_MD_CTX* ctx = nullptr;
};

namespace {

// EVP only fails on allocation failure or a broken OpenSSL install; neither
// is recoverable, and a wrong digest would be worse than stopping.
void CheckEvp(int ok, const char* what) {
  if (ok != 1) {
    std::fprintf(stderr, "weightdrop: OpenSSL %s failed\n", what);
    std::abort();
  }
}

}  // namespace

Sha256::Sha256() : state_(std::make_unique<State>()) {
  state_->ctx = EVP_MD_CTX_new();
  CheckEvp(state_->ctx != nullptr, "EVP_MD_CTX_new");
  CheckEvp(EVP_DigestInit_ex(state_->ctx, EVP_sha256(), nullptr), "EVP_DigestInit_ex");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::Update(const void* data, size_t n) {
  if (!digest_.empty() || n == 0) return;
  CheckEvp(EVP_DigestUpdate(state_->ctx, data, n), "EVP_DigestUpdate");
}

std::string Sha256::HexDigest() {
  if (!digest_.empty()) return digest_;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  CheckEvp(EVP_DigestFinal_ex(state_->ctx, md, &len), "EVP_DigestFinal_ex");
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    digest_ += kHex[md[i] >> 4];
    digest_ += kHex[md[i] & 0xf];
  }
  return digest_;
}

std::string Sha256Hex(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.HexDigest();
}

Result<uint64_t> HashFileInto(const std::string& path, Sha256& h) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot read " + path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    close(fd);
    return S_ISREG(st.st_mode) ? ErrnoStatus("cannot stat " + path, err)
                               : Status::Bundle(path + ": not a regular file");
  }
  // 256 KiB: read() copies into a buffer that stays in L2 for the hash to
  // read back. With 1 MiB, perf put half the digest thread in the copy.
  std::vector<uint8_t> buf(256 << 10);
  uint64_t total = 0;
  for (;;) {
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return ErrnoStatus("cannot read " + path + " (after " + std::to_string(total) + " bytes)",
                         err);
    }
    if (n == 0) break;
    h.Update(buf.data(), static_cast<size_t>(n));
    total += static_cast<uint64_t>(n);
  }
  close(fd);
  return total;
}

}  // namespace wd
