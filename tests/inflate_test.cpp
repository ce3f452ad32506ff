#include "core/inflate.h"

#include <doctest/doctest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace wd {
namespace {

// zlib always; ISA-L too when the build has it.
std::vector<InflateImpl> Impls() {
  if (HaveIsal()) return {InflateImpl::kIsal, InflateImpl::kZlib};
  return {InflateImpl::kZlib};
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// Weights as training leaves them, rounded so they compress: float32 of
// normals at 2 decimals, with runs of zeros.
std::vector<uint8_t> Compressible(size_t n_floats, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<uint8_t> out(n_floats * 4);
  for (size_t i = 0; i < n_floats; ++i) {
    float v = (i / 1000) % 3 == 0 ? 0.0f : std::round(normal(rng) * 100.0f) / 100.0f;
    std::memcpy(out.data() + 4 * i, &v, 4);
  }
  return out;
}

// A raw deflate stream of `data` as zlib writes it at `level` (0: stored blocks).
std::vector<uint8_t> Deflate(const std::vector<uint8_t>& data, int level) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<uint8_t> out(deflateBound(&z, data.size()));
  z.next_in = const_cast<Bytef*>(data.data());
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Inflates `in` handed over `in_step` bytes at a time into pieces of at
// most `out_step`; stops at the stream's end, an error, or when no input is
// left and no progress is made (then `ended` stays false).
struct Inflated {
  std::vector<uint8_t> bytes;
  bool ended = false;
  Status status;
};
Inflated InflateAll(InflateImpl impl, const std::vector<uint8_t>& in, size_t in_step,
                    size_t out_step) {
  Inflated r;
  auto inf = Inflater::Create(impl);
  std::vector<uint8_t> out(out_step);
  size_t pos = 0;
  for (;;) {
    const size_t give = std::min(in_step, in.size() - pos);
    Result<Inflater::Step> s = inf->Inflate(in.data() + pos, give, out.data(), out.size());
    if (!s.ok()) {
      r.status = s.status();
      return r;
    }
    pos += s->consumed;
    r.bytes.insert(r.bytes.end(), out.begin(), out.begin() + s->produced);
    if (s->ended) {
      r.ended = true;
      return r;
    }
    if (s->consumed == 0 && s->produced == 0 && pos == in.size()) return r;
  }
}

TEST_CASE("CRC-32 is zip's, whichever library computes it, in one piece or many") {
  const std::vector<uint8_t> check = Bytes("123456789");
  const std::vector<uint8_t> data = Compressible(100003, 7);
  const uint32_t want = static_cast<uint32_t>(crc32(0, data.data(), data.size()));
  for (InflateImpl impl : Impls()) {
    CAPTURE(InflateImplName(impl));
    CHECK(Crc32(impl, 0, check.data(), check.size()) == 0xCBF43926u);  // the standard check value
    CHECK(Crc32(impl, 0, nullptr, 0) == 0u);
    CHECK(Crc32(impl, 0, data.data(), data.size()) == want);
    uint32_t chained = 0;
    for (size_t at = 0; at < data.size(); at += 4099) {
      chained = Crc32(impl, chained, data.data() + at, std::min<size_t>(4099, data.size() - at));
    }
    CHECK(chained == want);
  }
}

TEST_CASE("a raw deflate stream inflates to the same bytes however it is cut") {
  const std::vector<uint8_t> data = Compressible(300000, 1);  // 1.2 MB, many blocks
  struct Row {
    int level;
    size_t in_step, out_step;
  };
  const Row rows[] = {
      {6, 1 << 20, 256 << 10}, {9, 4096, 256 << 10},    {1, 1, 7}, {6, 13, 1}, {0, 65536, 1000},
      {0, 3, 65536},           {9, 128 << 10, 1 << 20},
  };
  for (InflateImpl impl : Impls()) {
    for (const Row& r : rows) {
      CAPTURE(InflateImplName(impl));
      CAPTURE(r.level);
      CAPTURE(r.in_step);
      CAPTURE(r.out_step);
      const std::vector<uint8_t> z = Deflate(data, r.level);
      Inflated got = InflateAll(impl, z, r.in_step, r.out_step);
      REQUIRE_MESSAGE(got.status.ok(), got.status.message());
      CHECK(got.ended);
      CHECK(got.bytes == data);
    }
  }
}

TEST_CASE("an empty stream ends at once with nothing") {
  const std::vector<uint8_t> z = Deflate({}, 6);
  for (InflateImpl impl : Impls()) {
    CAPTURE(InflateImplName(impl));
    Inflated got = InflateAll(impl, z, 1, 1);
    REQUIRE(got.status.ok());
    CHECK(got.ended);
    CHECK(got.bytes.empty());
  }
}

TEST_CASE("corrupt and truncated streams fail or stop short, never end cleanly") {
  const std::vector<uint8_t> data = Compressible(50000, 3);
  const std::vector<uint8_t> z = Deflate(data, 6);
  std::vector<uint8_t> reserved = z;
  reserved[0] |= 0x06;  // block type 3: reserved, invalid in every decoder
  std::vector<uint8_t> truncated(z.begin(), z.begin() + z.size() / 2);
  for (InflateImpl impl : Impls()) {
    CAPTURE(InflateImplName(impl));
    Inflated bad = InflateAll(impl, reserved, 1 << 16, 1 << 16);
    REQUIRE_FALSE(bad.status.ok());
    CHECK(bad.status.kind() == ErrorKind::kBundle);
    CHECK_MESSAGE(bad.status.message().find("corrupt deflate data: ") == 0, bad.status.message());
    Inflated cut = InflateAll(impl, truncated, 1 << 16, 1 << 16);
    REQUIRE_MESSAGE(cut.status.ok(), cut.status.message());
    CHECK_FALSE(cut.ended);
    CHECK(cut.bytes.size() < data.size());
  }
}

}  // namespace
}  // namespace wd
