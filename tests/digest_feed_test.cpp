#include "core/digest_feed.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "core/sha256.h"
#include "tests/test_util.h"

namespace wd {
namespace {

// 1 MiB + 7 of varied bytes.
std::string Content() {
  std::string s((1u << 20) + 7, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

const uint8_t* At(const std::string& s, size_t offset) {
  return reinterpret_cast<const uint8_t*>(s.data()) + offset;
}

TEST_CASE("a digest feed gives the file's SHA-256 whatever it is offered") {
  test::TempDir dir;
  const std::string content = Content();
  test::WriteFile(dir / "f.bin", content);
  const std::string want = Sha256Hex(content);
  struct Piece {
    size_t offset, size;
  };
  struct Case {
    const char* label;
    std::vector<Piece> pieces;
    uint64_t offered;  // bytes hashed from the pieces
  };
  const size_t n = content.size();
  const std::vector<Case> cases = {
      {"nothing offered: all read at the end", {}, 0},
      {"everything, in order", {{0, 1000}, {1000, n - 1000}}, n},
      {"gaps before, between and after", {{100, 1000}, {5000, 70000}, {80000, 1000}}, 72000},
      {"behind what is hashed: ignored", {{0, 5000}, {1000, 2000}, {0, 5000}}, 5000},
      {"straddling what is hashed: its new part", {{0, 5000}, {4000, 2000}}, 6000},
      {"out of order: the later one first", {{500000, 1000}, {100, 100}}, 1000},
      {"one byte at the very end", {{n - 1, 1}}, 1},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.label));
    auto feed = FileDigestFeed::Open(dir / "f.bin", "");
    REQUIRE_MESSAGE(feed.ok(), feed.status().message());
    for (const Piece& p : c.pieces) (*feed)->Offer(p.offset, At(content, p.offset), p.size);
    Result<std::string> got = (*feed)->Finish();
    REQUIRE_MESSAGE(got.ok(), got.status().message());
    CHECK(*got == want);
    CHECK((*feed)->offered_bytes() == c.offered);
    CHECK((*feed)->offered_bytes() + (*feed)->read_bytes() == n);
  }
}

TEST_CASE("a digest feed of a file named by its weight hashes name, NUL and size first") {
  test::TempDir dir;
  const std::string content = Content();
  test::WriteFile(dir / "w.npy", content);
  auto feed = FileDigestFeed::Open(dir / "w.npy", "w.npy");
  REQUIRE(feed.ok());
  (*feed)->Offer(0, At(content, 0), content.size());
  std::string le(8, '\0');
  for (int i = 0; i < 8; ++i) le[i] = static_cast<char>(uint64_t{content.size()} >> (8 * i));
  CHECK(*(*feed)->Finish() == Sha256Hex(std::string("w.npy") + '\0' + le + content));
}

TEST_CASE("a digest feed reports a file that shrank under it and refuses links") {
  test::TempDir dir;
  const std::string content = Content();
  test::WriteFile(dir / "f.bin", content);
  auto feed = FileDigestFeed::Open(dir / "f.bin", "");
  REQUIRE(feed.ok());
  test::WriteFile(dir / "f.bin", content.substr(0, 100));  // truncated in place
  (*feed)->Offer(5000, At(content, 5000), 100);            // its gap is gone
  Result<std::string> got = (*feed)->Finish();
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().kind() == ErrorKind::kIncomplete);
  CHECK(got.status().message() == dir / "f.bin" + ": shrank while it was read");

  std::filesystem::create_symlink(dir / "f.bin", dir / "link.bin");
  auto link = FileDigestFeed::Open(dir / "link.bin", "");
  REQUIRE_FALSE(link.ok());
}

}  // namespace
}  // namespace wd
