#include "core/sha256.h"

#include <openssl/evp.h>

#include <cstdio>
#include <cstdlib>

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

}  // namespace wd
