// Raw deflate and CRC-32 through ISA-L (WD_HAVE_ISAL) or zlib.
#include "core/inflate.h"

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <string>

#ifdef WD_HAVE_ISAL
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#endif

namespace wd {
namespace {

#ifdef WD_HAVE_ISAL
constexpr InflateImpl kDefaultImpl = InflateImpl::kIsal;
#else
constexpr InflateImpl kDefaultImpl = InflateImpl::kZlib;
#endif

std::atomic<InflateImpl> g_active{kDefaultImpl};

// Both libraries count in 32 bits; a larger buffer is used in pieces.
constexpr size_t kMaxStep = size_t{1} << 30;

class ZlibInflater : public Inflater {
 public:
  ZlibInflater() {
    // -15: a raw deflate stream (no zlib header), 32 KiB window.
    ok_ = inflateInit2(&z_, -15) == Z_OK;
  }
  ~ZlibInflater() override {
    if (ok_) inflateEnd(&z_);
  }
  ZlibInflater(const ZlibInflater&) = delete;
  ZlibInflater& operator=(const ZlibInflater&) = delete;

  Result<Step> Inflate(const uint8_t* in, size_t in_n, uint8_t* out, size_t out_n) override {
    if (!ok_) return Status::Environment("zlib: cannot start inflating (out of memory?)");
    z_.next_in = const_cast<Bytef*>(in);  // zlib's API predates const
    z_.avail_in = static_cast<uInt>(std::min(in_n, kMaxStep));
    z_.next_out = out;
    z_.avail_out = static_cast<uInt>(std::min(out_n, kMaxStep));
    const uInt in_before = z_.avail_in, out_before = z_.avail_out;
    const int rc = inflate(&z_, Z_NO_FLUSH);
    Step s{in_before - z_.avail_in, out_before - z_.avail_out, rc == Z_STREAM_END};
    if (rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR) return s;  // BUF: no progress
    if (rc == Z_MEM_ERROR) return Status::Environment("zlib: out of memory while inflating");
    return Status::Bundle(std::string("corrupt deflate data: ") +
                          (z_.msg != nullptr ? z_.msg : "zlib error " + std::to_string(rc)));
  }

 private:
  z_stream z_{};
  bool ok_ = false;
};

#ifdef WD_HAVE_ISAL
const char* IsalError(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid block";
    case ISAL_INVALID_SYMBOL:
      return "invalid code";
    case ISAL_INVALID_LOOKBACK:
      return "distance too far back";
    default:
      return "unexpected ISA-L inflate result";
  }
}

class IsalInflater : public Inflater {
 public:
  IsalInflater() {
    isal_inflate_init(&s_);
    s_.crc_flag = ISAL_DEFLATE;  // raw deflate; we CRC the output ourselves
  }

  Result<Step> Inflate(const uint8_t* in, size_t in_n, uint8_t* out, size_t out_n) override {
    s_.next_in = const_cast<uint8_t*>(in);  // ISA-L's API has no const
    s_.avail_in = static_cast<uint32_t>(std::min(in_n, kMaxStep));
    s_.next_out = out;
    s_.avail_out = static_cast<uint32_t>(std::min(out_n, kMaxStep));
    const uint32_t in_before = s_.avail_in, out_before = s_.avail_out;
    const int rc = isal_inflate(&s_);
    if (rc != ISAL_DECOMP_OK) {
      return Status::Bundle(std::string("corrupt deflate data: ") + IsalError(rc) + " (ISA-L " +
                            std::to_string(rc) + ")");
    }
    return Step{in_before - s_.avail_in, out_before - s_.avail_out,
                s_.block_state == ISAL_BLOCK_FINISH};
  }

 private:
  inflate_state s_;
};
#endif

}  // namespace

const char* InflateImplName(InflateImpl impl) {
  return impl == InflateImpl::kIsal ? "ISA-L" : "zlib";
}

bool HaveIsal() { return kDefaultImpl == InflateImpl::kIsal; }

InflateImpl ActiveInflateImpl() { return g_active.load(std::memory_order_relaxed); }

void SetActiveInflateImpl(InflateImpl impl) {
  g_active.store(HaveIsal() ? impl : InflateImpl::kZlib, std::memory_order_relaxed);
}

uint32_t Crc32(InflateImpl impl, uint32_t crc, const uint8_t* data, size_t n) {
#ifdef WD_HAVE_ISAL
  if (impl == InflateImpl::kIsal) return crc32_gzip_refl(crc, data, n);
#else
  (void)impl;
#endif
  for (size_t done = 0; done < n;) {
    const size_t piece = std::min(n - done, kMaxStep);
    crc = static_cast<uint32_t>(crc32(crc, data + done, static_cast<uInt>(piece)));
    done += piece;
  }
  return crc;
}

std::unique_ptr<Inflater> Inflater::Create(InflateImpl impl) {
#ifdef WD_HAVE_ISAL
  if (impl == InflateImpl::kIsal) return std::make_unique<IsalInflater>();
#else
  (void)impl;
#endif
  return std::make_unique<ZlibInflater>();
}

}  // namespace wd
