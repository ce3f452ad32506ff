#include "core/weight_stream.h"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/digest_feed.h"
#include "core/pipeline.h"
#include "tests/test_util.h"

namespace wd {
namespace {

// Every read of `stream` in order: one string of bytes per read, plus the
// number of chunks each arrived in. Stops at the first error.
struct Drained {
  std::vector<std::string> bytes;
  std::vector<size_t> chunks;
  Status error;
};

Drained Drain(WeightStream& stream, size_t reads) {
  Drained d;
  for (size_t r = 0; r < reads; ++r) {
    std::string got;
    size_t chunks = 0;
    for (;;) {
      Result<std::span<const uint8_t>> c = stream.Next();
      if (!c.ok()) {
        d.error = c.status();
        return d;
      }
      if (c->empty()) break;
      got.append(reinterpret_cast<const char*>(c->data()), c->size());
      ++chunks;
    }
    d.bytes.push_back(std::move(got));
    d.chunks.push_back(chunks);
  }
  return d;
}

// Each weight once; the first also twice more as affine quantization reads it.
std::vector<WeightRead> AllReads(const Bundle& b) {
  std::vector<WeightRead> reads;
  for (size_t i = 0; i < b.weights().size(); ++i) {
    reads.push_back({.entry = i, .second_pass = false, .keep_for_second = i == 0});
    if (i == 0) reads.push_back({.entry = 0, .second_pass = true});
  }
  return reads;
}

std::string Iota(size_t n) {
  std::string out(n * 4, '\0');
  for (size_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    std::memcpy(&out[i * 4], &f, 4);
  }
  return out;
}

TEST_CASE("a read-ahead stream hands over the same bytes as reading on the caller's thread") {
  for (const char* file : {"savez.npz", "savez_compressed.npz"}) {
    CAPTURE(std::string(file));
    auto b = Bundle::Open(test::SourcePath("data/reader/") + file);
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    const std::vector<WeightRead> reads = AllReads(**b);
    // One stream at a time: a Bundle's archives are read by one thread.
    const Drained want = [&] {
      WeightStream inline_stream(**b, reads, /*threaded=*/false);
      return Drain(inline_stream, reads.size());
    }();
    const Drained got = [&] {
      WeightStream threaded(**b, reads, /*threaded=*/true, /*ahead_bytes=*/64);
      CHECK(threaded.reader_threads() == ((*b)->IsCompressed((*b)->weights()[0]) ? 2 : 1));
      return Drain(threaded, reads.size());
    }();
    REQUIRE_MESSAGE(want.error.ok(), want.error.message());
    REQUIRE_MESSAGE(got.error.ok(), got.error.message());
    CHECK(got.bytes == want.bytes);
    // Both passes over the first weight (the second from the scratch copy of
    // a deflated member) give its float32 data.
    CHECK(want.bytes[0] == test::Floats({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
    CHECK(want.bytes[1] == want.bytes[0]);
    for (size_t r = 2; r < reads.size(); ++r) {
      CHECK(want.bytes[r].size() == (*b)->weights()[reads[r].entry].data_bytes);
    }
  }
}

TEST_CASE("a large weight arrives in chunks of whole elements, a Fortran one in C order") {
  test::TempDir dir;
  std::filesystem::create_directory(dir / "b");
  const size_t n = 600 * 1000;  // 2.4 MB: three chunks of at most 256 Ki floats
  test::WriteFile(dir / "b/a.npy", test::Npy("<f4", "(600000,)", Iota(n)));
  test::WriteFile(dir / "b/f.npy", test::Npy("<i4", "(2, 3)", test::Int32s({1, 4, 2, 5, 3, 6}),
                                             /*fortran_order=*/true));
  auto b = Bundle::Open(dir / "b");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  for (bool threaded : {false, true}) {
    CAPTURE(threaded);
    WeightStream stream(**b, {{.entry = 0}, {.entry = 1}}, threaded);
    const Drained d = Drain(stream, 2);
    REQUIRE_MESSAGE(d.error.ok(), d.error.message());
    CHECK(d.bytes[0] == Iota(n));
    CHECK(d.chunks[0] == 3);
    CHECK(d.bytes[1] == test::Int32s({1, 2, 3, 4, 5, 6}));
  }
}

// savez_compressed.npz with a byte near the end of its first member's deflated
// data flipped (the .npy header still inflates).
std::string CorruptDeflated() {
  std::string zip = test::ReadFile(test::SourcePath("data/reader/savez_compressed.npz"));
  const size_t name_len = static_cast<uint8_t>(zip[26]) | static_cast<uint8_t>(zip[27]) << 8;
  const size_t extra_len = static_cast<uint8_t>(zip[28]) | static_cast<uint8_t>(zip[29]) << 8;
  const size_t comp_size = static_cast<uint8_t>(zip[18]) | static_cast<uint8_t>(zip[19]) << 8;
  zip[30 + name_len + extra_len + comp_size - 3] ^= 0x5a;  // past the .npy header
  return zip;
}

TEST_CASE("an error in a later weight reaches the consumer after the data before it") {
  struct Case {
    const char* label;
    std::string npz;
    size_t readers;  // threaded
  };
  const Case cases[] = {
      {"stored member, CRC mismatch", test::ReadFile(test::SourcePath("data/reader/bad_crc.npz")),
       1},
      {"deflated member, two readers", CorruptDeflated(), 2},
  };
  for (const Case& c : cases) {
    CAPTURE(c.label);
    test::TempDir dir;
    std::filesystem::create_directory(dir / "b");
    const size_t n = 300 * 1000;
    test::WriteFile(dir / "b/a.npy", test::Npy("<f4", "(300000,)", Iota(n)));
    test::WriteFile(dir / "b/z.npz", c.npz);
    auto b = Bundle::Open(dir / "b");
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    for (bool threaded : {false, true}) {
      CAPTURE(threaded);
      WeightStream stream(**b, {{.entry = 0}, {.entry = 1}, {.entry = 2}}, threaded);
      CHECK(stream.reader_threads() == (threaded ? c.readers : 0));
      const Drained d = Drain(stream, 3);
      REQUIRE(d.bytes.size() == 1);
      CHECK(d.bytes[0] == Iota(n));
      CHECK(d.error.kind() == ErrorKind::kBundle);
      CHECK(d.error.message().find("z.npz: member 'dense/kernel.npy'") != std::string::npos);
    }
  }
}

// A .safetensors file of two float32 tensors (the header padded to 8 bytes).
std::string TwoTensors() {
  std::string header = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(uint64_t{header.size()} >> (8 * i));
  return out + header + test::Floats({1, 2, 3}) + test::Floats({4, 5});
}

TEST_CASE("a one-file bundle's digest is fed by the stream's own reads") {
  test::TempDir dir;
  test::WriteFile(dir / "w.npy", test::Npy("<f4", "(600000,)", Iota(600 * 1000)));
  test::WriteFile(dir / "t.safetensors", TwoTensors());
  struct Case {
    std::string path;
    std::string digest_name;  // a .npy is digested under its file name
  };
  const std::string data = test::SourcePath("data/reader/");
  for (const Case& c : {Case{data + "savez.npz", ""}, Case{data + "zip64.npz", ""},
                        Case{data + "descriptor.npz", ""}, Case{dir / "w.npy", "w.npy"},
                        Case{dir / "t.safetensors", ""}}) {
    CAPTURE(c.path);
    auto b = Bundle::Open(c.path);
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    const std::vector<WeightRead> reads = AllReads(**b);
    // What the stream reads raw from the file: stored data, except a
    // transposed Fortran array (it comes from memory, in another order).
    uint64_t raw_bytes = 0;
    for (const WeightEntry& w : (*b)->weights()) {
      if (!(*b)->IsCompressed(w) && !(w.fortran_order && w.shape.size() > 1)) {
        raw_bytes += w.data_bytes;
      }
    }
    auto feed = FileDigestFeed::Open(c.path, c.digest_name);
    REQUIRE(feed.ok());
    size_t lanes = 0;
    {
      WeightStream stream(**b, reads, /*threaded=*/true, kReadAheadBytes, feed->get());
      lanes = stream.reader_threads();
      const Drained d = Drain(stream, reads.size());
      REQUIRE_MESSAGE(d.error.ok(), d.error.message());
    }
    Result<std::string> fed = (*feed)->Finish();
    REQUIRE_MESSAGE(fed.ok(), fed.status().message());
    CHECK(*fed == *BundleDigest(**b));
    // Those bytes came from the stream; the file was read here only for
    // the rest (headers, the zip's directory, deflated members). With two
    // reading threads (some member inflates) pieces may come out of file
    // order, and one behind what is hashed is read here instead.
    if (lanes == 1) CHECK((*feed)->offered_bytes() == raw_bytes);
    CHECK((*feed)->offered_bytes() <= raw_bytes);
    CHECK((*feed)->offered_bytes() + (*feed)->read_bytes() == std::filesystem::file_size(c.path));
  }
}

TEST_CASE("a stream dropped part way stops its reader") {
  test::TempDir dir;
  std::filesystem::create_directory(dir / "b");
  for (const char* name : {"a.npy", "b.npy", "c.npy"}) {
    test::WriteFile(dir / "b" + "/" + name, test::Npy("<f4", "(1000000,)", Iota(1000 * 1000)));
  }
  auto b = Bundle::Open(dir / "b");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  for (size_t consumed : {0, 1, 5}) {
    CAPTURE(consumed);
    WeightStream stream(**b, {{.entry = 0}, {.entry = 1}, {.entry = 2}}, /*threaded=*/true,
                        /*ahead_bytes=*/1);
    for (size_t i = 0; i < consumed; ++i) REQUIRE(stream.Next().ok());
  }  // each destructor returns: the reader, blocked on a full queue, stops
}

}  // namespace
}  // namespace wd
