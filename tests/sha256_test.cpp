#include "core/sha256.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "tests/test_util.h"

namespace wd {
namespace {

TEST_CASE("sha256 matches the FIPS 180-2 test vectors") {
  struct Row {
    std::string input;
    std::string hex;
  };
  const Row rows[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1000000, 'a'),
       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.input.size());
    CHECK(Sha256Hex(row.input) == row.hex);
  }
}

TEST_CASE("sha256 fed in pieces equals the one-shot digest") {
  const std::string text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  Sha256 h;
  for (size_t i = 0; i < text.size(); i += 7) h.Update(text.substr(i, 7));
  CHECK(h.HexDigest() == Sha256Hex(text));
  CHECK(h.HexDigest() == Sha256Hex(text));  // finishing twice is stable

  h = Sha256();  // a fresh digest
  h.Update("abc");
  CHECK(h.HexDigest() == Sha256Hex("abc"));
  Sha256 moved(std::move(h));
  CHECK(moved.HexDigest() == Sha256Hex("abc"));
}

TEST_CASE("hashing a file reports a read error instead of a short digest") {
  test::TempDir d;
  test::WriteFile(d / "f", std::string(300000, 'x'));
  Sha256 h;
  Result<uint64_t> n = HashFileInto(d / "f", h);
  REQUIRE(n.ok());
  CHECK(*n == 300000);
  CHECK(h.HexDigest() == Sha256Hex(std::string(300000, 'x')));

  // Reading /proc/self/mem at offset 0 (never mapped) fails with EIO: the
  // error must come back, not a digest of zero bytes.
  Sha256 eio;
  Result<uint64_t> bad = HashFileInto("/proc/self/mem", eio);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().kind() == ErrorKind::kEnvironment);
  CHECK(bad.status().message().find("cannot read /proc/self/mem (after 0 bytes)") !=
        std::string::npos);

  Sha256 dir;
  Result<uint64_t> not_file = HashFileInto(d.path(), dir);
  REQUIRE_FALSE(not_file.ok());
  CHECK(not_file.status().message().find("not a regular file") != std::string::npos);
}

}  // namespace
}  // namespace wd
