// Fuzz target: the .npy header parser (core/npy_header.h). The input is the
// start of a .npy file. It is parsed twice, once from memory and once through
// a source that hands out a few bytes per read, and both must agree; an
// accepted header must be self-consistent.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/npy_header.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

// Returns 1, 2, ... 7 bytes per Read, cycling: every short-read path.
class TrickleSource : public wd::ByteSource {
 public:
  TrickleSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  wd::Result<size_t> Read(uint8_t* buf, size_t n) override {
    step_ = step_ % 7 + 1;
    size_t k = std::min({n, step_, size_ - pos_});
    std::copy(data_ + pos_, data_ + pos_ + k, buf);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  size_t step_ = 0;
};

void CheckConsistent(const wd::NpyHeader& h, size_t input_size) {
  using wd::fuzz::Fail;
  uint64_t count = 1;
  for (uint64_t d : h.shape) count *= d;  // no overflow: data_bytes was overflow-checked
  if (count != h.element_count) Fail("element_count is not the product of the shape");
  if (h.element_count * h.dtype.item_size != h.data_bytes) {
    Fail("data_bytes is not element_count * item_size");
  }
  if (h.header_size > input_size) Fail("header_size runs past the bytes read");
  if (h.dtype.descr.empty()) Fail("accepted an empty descr");
  if (h.major < 1 || h.major > 3) Fail("accepted version " + std::to_string(h.major));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  const wd::Result<wd::NpyHeader> whole = wd::ParseNpyHeader(bytes, "fuzz.npy");
  TrickleSource trickle(data, size);
  const wd::Result<wd::NpyHeader> pieces = wd::ReadNpyHeader(trickle, "fuzz.npy");
  if (whole.ok() != pieces.ok()) wd::fuzz::Fail("short reads change whether a header parses");
  if (!whole.ok()) {
    if (whole.status().message() != pieces.status().message()) {
      wd::fuzz::Fail("short reads change the error: '" + whole.status().message() + "' vs '" +
                     pieces.status().message() + "'");
    }
    if (whole.status().message().find("fuzz.npy") == std::string::npos) {
      wd::fuzz::Fail("error does not name the file: " + whole.status().message());
    }
    return 0;
  }
  CheckConsistent(*whole, size);
  if (whole->shape != pieces->shape || whole->dtype.descr != pieces->dtype.descr ||
      whole->header_size != pieces->header_size || whole->data_bytes != pieces->data_bytes ||
      whole->fortran_order != pieces->fortran_order) {
    wd::fuzz::Fail("short reads change the parsed header");
  }
  return 0;
}
