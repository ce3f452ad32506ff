#include "core/sha256.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>

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

}  // namespace
}  // namespace wd
