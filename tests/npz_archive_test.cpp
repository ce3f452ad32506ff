#include "core/npz_archive.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <map>
#include <optional>

#include "core/inflate.h"
#include "core/npy_header.h"
#include "tests/test_util.h"

namespace wd {
namespace {

Result<std::unique_ptr<NpzArchive>> OpenPath(const std::string& path, const std::string& where) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  return NpzArchive::Open(fd, where);
}

Result<std::unique_ptr<NpzArchive>> OpenFixture(const std::string& name) {
  return OpenPath(test::SourcePath("data/reader/" + name), name);
}

// Reads a source to its end in odd-sized chunks.
Result<std::string> Drain(ByteSource& src) {
  std::string out;
  uint8_t buf[37];
  for (;;) {
    WD_ASSIGN_OR_RETURN(size_t n, src.Read(buf, sizeof buf));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
}

Result<std::string> ReadMember(const NpzArchive& a, size_t i) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, a.OpenMember(a.members()[i]));
  return Drain(*src);
}

// zlib always; ISA-L too when the build has it. Tests of member data run
// once with each.
std::vector<InflateImpl> Impls() {
  if (HaveIsal()) return {InflateImpl::kIsal, InflateImpl::kZlib};
  return {InflateImpl::kZlib};
}

// Makes members opened in its scope read with `impl`.
class UseImpl {
 public:
  explicit UseImpl(InflateImpl impl) : old_(ActiveInflateImpl()) { SetActiveInflateImpl(impl); }
  ~UseImpl() { SetActiveInflateImpl(old_); }
  UseImpl(const UseImpl&) = delete;
  UseImpl& operator=(const UseImpl&) = delete;

 private:
  InflateImpl old_;
};

const std::vector<std::string> kSavezNames = {"dense/kernel.npy", "dense/bias.npy", "step.npy",
                                              "mask.npy",         "words.npy",      "raw.npy",
                                              "big_endian.npy",   "fortran.npy"};

// Every member of savez.npz, by name: the reference bytes.
std::map<std::string, std::string> SavezMembers() {
  auto a = OpenFixture("savez.npz");
  REQUIRE_MESSAGE(a.ok(), a.status().message());
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < (*a)->members().size(); ++i) {
    auto bytes = ReadMember(**a, i);
    REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
    out[(*a)->members()[i].name] = *bytes;
  }
  return out;
}

TEST_CASE("each member's data start is found in the zip's own headers") {
  for (const char* name : {"savez.npz", "savez_compressed.npz", "zip64.npz", "descriptor.npz"}) {
    CAPTURE(std::string(name));
    const std::string file = test::ReadFile(test::SourcePath("data/reader/") + name);
    auto a = OpenFixture(name);
    REQUIRE_MESSAGE(a.ok(), a.status().message());
    for (size_t i = 0; i < (*a)->members().size(); ++i) {
      const NpzMember& m = (*a)->members()[i];
      CAPTURE(m.name);
      REQUIRE(m.data_start != NpzMember::kUnknownOffset);
      REQUIRE(m.data_start + m.comp_size <= file.size());
      auto bytes = ReadMember(**a, i);
      REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
      if (!m.stored) {  // its raw deflate stream is there: inflate it with zlib
        std::string out(m.size, '\0');
        z_stream z{};
        REQUIRE(inflateInit2(&z, -15) == Z_OK);
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(file.data() + m.data_start));
        z.avail_in = static_cast<uInt>(m.comp_size);
        z.next_out = reinterpret_cast<Bytef*>(out.data());
        z.avail_out = static_cast<uInt>(out.size());
        CHECK(inflate(&z, Z_FINISH) == Z_STREAM_END);
        inflateEnd(&z);
        CHECK(out == *bytes);
        continue;
      }
      CHECK(file.compare(m.data_start, m.size, *bytes) == 0);
    }
  }
}

TEST_CASE("np.savez members are listed in the order NumPy wrote them") {
  auto a = OpenFixture("savez.npz");
  REQUIRE_MESSAGE(a.ok(), a.status().message());
  const auto& m = (*a)->members();
  REQUIRE(m.size() == kSavezNames.size());
  for (size_t i = 0; i < m.size(); ++i) {
    CHECK(m[i].name == kSavezNames[i]);
    CHECK(m[i].index == i);
    CHECK(m[i].stored);
    CHECK(m[i].size == m[i].comp_size);
  }
  CHECK((*a)->where() == "savez.npz");
}

TEST_CASE("member bytes hold a .npy header and the array data") {
  auto a = OpenFixture("savez.npz");
  REQUIRE(a.ok());
  auto src = (*a)->OpenMember((*a)->members()[0]);
  REQUIRE(src.ok());
  auto h = ReadNpyHeader(**src, "dense/kernel.npy");
  REQUIRE_MESSAGE(h.ok(), h.status().message());
  CHECK(h->dtype.descr == "<f4");
  CHECK(h->shape == std::vector<uint64_t>{3, 4});
  CHECK(h->header_size + h->data_bytes == (*a)->members()[0].size);
  float values[12];
  REQUIRE(ReadExact(**src, reinterpret_cast<uint8_t*>(values), sizeof values, "k", 0).ok());
  for (int i = 0; i < 12; ++i) CHECK(values[i] == static_cast<float>(i));
}

TEST_CASE("a stored range is the member's bytes read raw, without the CRC check") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    auto good = OpenFixture("savez.npz");
    REQUIRE(good.ok());
    for (size_t i = 0; i < (*good)->members().size(); ++i) {
      const NpzMember& m = (*good)->members()[i];
      CAPTURE(m.name);
      auto whole = ReadMember(**good, i);
      REQUIRE(whole.ok());
      auto src = (*good)->OpenStoredRange(m, 7, m.size - 9);
      REQUIRE_MESSAGE(src.ok(), src.status().message());
      auto range = Drain(**src);
      REQUIRE_MESSAGE(range.ok(), range.status().message());
      CHECK(*range == whole->substr(7, m.size - 9));
    }
    // bad_crc.npz's first member has a flipped data byte: a whole read fails
    // its CRC, a raw range (a second pass after a checked first) does not.
    auto bad = OpenFixture("bad_crc.npz");
    REQUIRE(bad.ok());
    const NpzMember& m = (*bad)->members()[0];
    CHECK(ReadMember(**bad, 0).status().message().find("CRC mismatch") != std::string::npos);
    auto src = (*bad)->OpenStoredRange(m, 1, m.size - 1);
    REQUIRE(src.ok());
    auto range = Drain(**src);
    REQUIRE_MESSAGE(range.ok(), range.status().message());
    CHECK(range->size() == m.size - 1);
    // Only stored members, never from byte 0 (libzip would check the CRC).
    auto deflated = OpenFixture("savez_compressed.npz");
    REQUIRE(deflated.ok());
    CHECK_FALSE((*deflated)->OpenStoredRange((*deflated)->members()[0], 1, 10).ok());
    CHECK_FALSE((*good)->OpenStoredRange((*good)->members()[0], 0, 10).ok());
  }
}

TEST_CASE("stored, deflated, data-descriptor and zip64 archives yield the same members") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    struct Row {
      const char* file;
      size_t count;
      std::vector<bool> stored;
    };
    const Row rows[] = {
        {"savez_compressed.npz", 8, std::vector<bool>(8, false)},
        {"descriptor.npz", 4, {true, true, false, false}},
        {"zip64.npz", 3, {true, false, true}},
    };
    std::map<std::string, std::string> want = SavezMembers();
    for (const Row& r : rows) {
      CAPTURE(std::string(r.file));
      auto a = OpenFixture(r.file);
      REQUIRE_MESSAGE(a.ok(), a.status().message());
      const auto& m = (*a)->members();
      REQUIRE(m.size() == r.count);
      for (size_t i = 0; i < m.size(); ++i) {
        CAPTURE(m[i].name);
        CHECK(m[i].name == kSavezNames[i]);
        CHECK(m[i].stored == r.stored[i]);
        auto bytes = ReadMember(**a, i);
        REQUIRE_MESSAGE(bytes.ok(), bytes.status().message());
        CHECK(bytes->size() == m[i].size);
        CHECK(*bytes == want[m[i].name]);
      }
    }
  }
}

TEST_CASE("a member can be opened again and read from the start") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    auto a = OpenFixture("savez_compressed.npz");
    REQUIRE(a.ok());
    auto first = ReadMember(**a, 4);
    auto again = ReadMember(**a, 4);
    REQUIRE(first.ok());
    REQUIRE(again.ok());
    CHECK(*first == *again);
  }
}

TEST_CASE("member read failures name the archive and member") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    struct Row {
      const char* file;
      size_t member;
      const char* error;
    };
    const Row rows[] = {
        {"bad_crc.npz", 0, "bad_crc.npz: member 'dense/kernel.npy': CRC mismatch: data is corrupt"},
        {"bomb.npz", 0, "bomb.npz: member 'w.npy': inflates past its declared 1000 bytes"},
        {"short.npz", 0, "short.npz: member 'w.npy': holds only 384 bytes but declares 484"},
    };
    for (const Row& r : rows) {
      CAPTURE(std::string(r.file));
      auto a = OpenFixture(r.file);
      REQUIRE_MESSAGE(a.ok(), a.status().message());
      auto bytes = ReadMember(**a, r.member);
      REQUIRE_FALSE(bytes.ok());
      CHECK(bytes.status().kind() == ErrorKind::kBundle);
      CHECK_MESSAGE(bytes.status().message().find(r.error) == 0, bytes.status().message());
    }
  }
}

TEST_CASE("a member shorter than declared is an error, not a short read") {
  auto a = OpenFixture("short.npz");
  REQUIRE(a.ok());
  CHECK((*a)->members()[0].size == 128 + 256 + 100);
  auto bytes = ReadMember(**a, 0);
  REQUIRE_FALSE(bytes.ok());
  CHECK(bytes.status().kind() == ErrorKind::kBundle);
}

TEST_CASE("a corrupt member does not spoil its neighbours") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    auto a = OpenFixture("bad_crc.npz");
    REQUIRE(a.ok());
    auto bias = ReadMember(**a, 1);
    REQUIRE_MESSAGE(bias.ok(), bias.status().message());
    CHECK(*bias == SavezMembers()["dense/bias.npy"]);
  }
}

TEST_CASE("a deflate bomb is never inflated past its declared size plus one byte") {
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    CAPTURE(InflateImplName(impl));
    auto a = OpenFixture("bomb.npz");
    REQUIRE(a.ok());
    auto src = (*a)->OpenMember((*a)->members()[0]);
    REQUIRE(src.ok());
    // The read that reaches the declared size already proves the member ends.
    std::vector<uint8_t> buf(1 << 20);
    auto n = (*src)->Read(buf.data(), buf.size());
    REQUIRE_FALSE(n.ok());
    CHECK(n.status().message().find("inflates past its declared 1000 bytes") != std::string::npos);
  }
}

TEST_CASE("archives and members that cannot be read are refused with the reason") {
  struct Row {
    const char* file;
    ErrorKind kind;
    const char* error;
  };
  const Row rows[] = {
      {"encrypted.npz", ErrorKind::kBundle, "encrypted.npz: member 'w.npy': is encrypted"},
      {"bzip2.npz", ErrorKind::kBundle,
       "bzip2.npz: member 'w.npy': uses compression method 12 (only stored and deflate are read)"},
      {"dup.npz", ErrorKind::kBundle, "dup.npz: two members have the same name"},
      {"v1.npy", ErrorKind::kBundle, "v1.npy: not a zip archive (a .npz is a zip)"},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.file));
    auto a = OpenFixture(r.file);
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().kind() == r.kind);
    CHECK(a.status().message() == r.error);
  }
}

TEST_CASE("a zip still being written is incomplete, not corrupt") {
  test::TempDir dir;
  std::string whole = test::ReadFile(test::SourcePath("data/reader/savez.npz"));
  struct Row {
    const char* name;
    std::string bytes;
    ErrorKind kind;
    const char* error;
  };
  std::string bad_cd_offset = whole;
  bad_cd_offset[bad_cd_offset.size() - 6] ^= 0x01;  // EOCD: central directory offset
  const Row rows[] = {
      {"empty", "", ErrorKind::kIncomplete, "empty file (still being written?)"},
      {"half", whole.substr(0, whole.size() / 2), ErrorKind::kIncomplete,
       "zip has no end-of-central-directory record: truncated or still being written"},
      {"no end record", whole.substr(0, whole.size() - 10), ErrorKind::kIncomplete,
       "zip has no end-of-central-directory record"},
      {"bad offset", bad_cd_offset, ErrorKind::kBundle, "zip archive is inconsistent"},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.name));
    std::string path = dir / (std::string(r.name) + ".npz");
    test::WriteFile(path, r.bytes);
    auto a = OpenPath(path, "m.npz");
    REQUIRE_FALSE(a.ok());
    CHECK(a.status().kind() == r.kind);
    CHECK_MESSAGE(a.status().message().find(std::string("m.npz: ") + r.error) == 0,
                  a.status().message());
  }
}

TEST_CASE("member names are read raw, so invalid UTF-8 reaches the name check") {
  auto a = OpenFixture("badname.npz");
  REQUIRE_MESSAGE(a.ok(), a.status().message());
  CHECK((*a)->members()[0].name == "bad\xff.npy");
}

// A raw deflate stream: zlib's own stream less its 2-byte header and its
// Adler-32 trailer.
std::string RawDeflate(const std::string& data, int level) {
  uLongf n = compressBound(data.size());
  std::string z(n, '\0');
  REQUIRE(compress2(reinterpret_cast<Bytef*>(z.data()), &n,
                    reinterpret_cast<const Bytef*>(data.data()), data.size(), level) == Z_OK);
  return z.substr(2, n - 6);
}

uint32_t Crc(const std::string& data) {
  return static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

// One member of a hand-written zip: its bytes as stored and what both its
// headers declare, each free to lie.
struct ZipMember {
  uint16_t method = 0;  // 0 stored, 8 deflated
  std::string data;     // as stored
  uint32_t crc = 0;
  uint32_t size = 0;  // declared uncompressed size
};

void Put(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// A zip of one member named w.npy, as zipfile writes it (no data descriptor).
std::string OneMemberZip(const ZipMember& m) {
  const std::string name = "w.npy";
  auto common = [&](std::string& out) {
    Put(out, 20, 2);  // version needed
    Put(out, 0, 2);   // flags
    Put(out, m.method, 2);
    Put(out, 0, 2);     // time
    Put(out, 0x21, 2);  // date: 1980-01-01
    Put(out, m.crc, 4);
    Put(out, m.data.size(), 4);
    Put(out, m.size, 4);
    Put(out, name.size(), 2);
    Put(out, 0, 2);  // extra length
  };
  std::string zip = "PK\x03\x04";
  common(zip);
  zip += name + m.data;
  const size_t central = zip.size();
  zip += "PK\x01\x02";
  Put(zip, 20, 2);  // version made by
  common(zip);
  Put(zip, 0, 2);  // comment length
  Put(zip, 0, 2);  // disk
  Put(zip, 0, 2);  // internal attributes
  Put(zip, 0, 4);  // external attributes
  Put(zip, 0, 4);  // local header offset
  zip += name;
  const size_t central_size = zip.size() - central;
  zip += "PK\x05\x06";
  Put(zip, 0, 4);  // disk numbers
  Put(zip, 1, 2);
  Put(zip, 1, 2);
  Put(zip, central_size, 4);
  Put(zip, central, 4);
  Put(zip, 0, 2);  // comment length
  return zip;
}

// GCC 12 at -O3 (the Release .deb build) reports the std::string members of
// the table below as maybe used uninitialized while it unwinds a partly
// built array: a false positive that -Werror turns into a
// failed package build.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
TEST_CASE("member data is checked the same way by ISA-L and zlib") {
  std::string floats;
  for (int i = 0; i < 20000; ++i) floats += test::Floats({static_cast<float>(i % 37) / 4});
  const std::string npy = test::Npy("<f4", "(20000,)", floats);
  const std::string z = RawDeflate(npy, 6);
  const std::string zeros(64 << 10, '\0');
  std::string flipped = z;
  flipped[z.size() / 2] ^= 0x10;
  std::string reserved = z;
  reserved[0] |= 0x06;  // block type 3, reserved: invalid to every decoder
  const uint32_t n = static_cast<uint32_t>(npy.size());
  struct Row {
    const char* name;
    ZipMember m;
    std::string want;                  // the member's bytes, if it reads
    std::optional<std::string> error;  // else how it goes on after "m.npz: member 'w.npy': "
  };
  const Row rows[] = {
      {"deflated", {8, z, Crc(npy), n}, npy, {}},
      {"deflated in stored blocks", {8, RawDeflate(npy, 0), Crc(npy), n}, npy, {}},
      {"deflated, empty", {8, RawDeflate("", 6), 0, 0}, "", {}},
      {"deflated, no compressed bytes, declared empty", {8, "", 0, 0}, "", {}},
      {"bytes after the end of the deflate stream are ignored, as zip readers do",
       {8, z + "junk", Crc(npy), n},
       npy,
       {}},
      {"stored", {0, npy, Crc(npy), n}, npy, {}},
      {"stored, empty", {0, "", 0, 0}, "", {}},
      {"stored, 1 byte", {0, "x", Crc("x"), 1}, "x", {}},
      {"stored, 2 bytes", {0, "xy", Crc("xy"), 2}, "xy", {}},
      {"reserved block type", {8, reserved, Crc(npy), n}, "", "corrupt deflate data: "},
      {"a byte flipped in the deflate stream", {8, flipped, Crc(npy), n}, "", ""},
      {"deflate stream cut in half",
       {8, z.substr(0, z.size() / 2), Crc(npy), n},
       "",
       "deflate stream is truncated"},
      {"a deflate bomb",
       {8, RawDeflate(zeros, 9), Crc(zeros), 1000},
       "",
       "inflates past its declared 1000 bytes"},
      {"declares more than it inflates to",
       {8, z, Crc(npy), n + 1},
       "",
       "holds only " + std::to_string(n) + " bytes but declares " + std::to_string(n + 1)},
      {"deflated, wrong CRC", {8, z, Crc(npy) ^ 1, n}, "", "CRC mismatch: data is corrupt"},
      {"stored, wrong CRC", {0, npy, Crc(npy) ^ 1, n}, "", "CRC mismatch: data is corrupt"},
      {"stored 1 byte, wrong CRC", {0, "x", Crc("y"), 1}, "", "CRC mismatch: data is corrupt"},
  };
  test::TempDir dir;
  for (InflateImpl impl : Impls()) {
    UseImpl use(impl);
    for (const Row& r : rows) {
      CAPTURE(InflateImplName(impl));
      CAPTURE(std::string(r.name));
      const std::string path = dir / "m.npz";
      test::WriteFile(path, OneMemberZip(r.m));
      auto a = OpenPath(path, "m.npz");
      REQUIRE_MESSAGE(a.ok(), a.status().message());
      for (size_t chunk : {size_t{37}, size_t{1} << 20}) {
        CAPTURE(chunk);
        auto src = (*a)->OpenMember((*a)->members()[0]);
        REQUIRE(src.ok());
        std::string got;
        std::vector<uint8_t> buf(chunk);
        Status st;
        for (;;) {
          Result<size_t> k = (*src)->Read(buf.data(), buf.size());
          if (!k.ok()) {
            st = k.status();
            break;
          }
          if (*k == 0) break;
          got.append(reinterpret_cast<const char*>(buf.data()), *k);
        }
        CHECK(got.size() <= r.m.size);  // never handed out past the declared size
        if (!r.error) {
          CHECK_MESSAGE(st.ok(), st.message());
          CHECK(got == r.want);
        } else {
          REQUIRE_FALSE(st.ok());
          CHECK(st.kind() == ErrorKind::kBundle);
          CHECK_MESSAGE(st.message().find("m.npz: member 'w.npy': " + *r.error) == 0, st.message());
        }
      }
    }
  }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace
}  // namespace wd
