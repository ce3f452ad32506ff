#include "core/bundle.h"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "tests/test_util.h"

namespace wd {
namespace {

using test::Floats;
using test::Npy;

std::string Fixture(const std::string& name) {
  return test::ReadFile(test::SourcePath("data/reader/" + name));
}

std::vector<std::string> Names(const Bundle& b) {
  std::vector<std::string> out;
  for (const WeightEntry& w : b.weights()) out.push_back(w.name);
  return out;
}

Result<std::string> ReadData(const Bundle& b, const WeightEntry& w) {
  WD_ASSIGN_OR_RETURN(std::unique_ptr<ByteSource> src, b.OpenData(w));
  std::string out;
  uint8_t buf[29];
  for (;;) {
    WD_ASSIGN_OR_RETURN(size_t n, src->Read(buf, sizeof buf));
    if (n == 0) return out;
    out.append(reinterpret_cast<const char*>(buf), n);
  }
}

const std::vector<std::string> kSavezNames = {
    "dense/kernel", "dense/bias", "step", "mask", "words", "raw", "big_endian", "fortran"};

TEST_CASE("a .npz bundle names weights by member minus .npy, in stored order") {
  for (const char* file : {"savez.npz", "savez_compressed.npz"}) {
    CAPTURE(std::string(file));
    auto b = Bundle::Open(test::SourcePath("data/reader/") + file);
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    CHECK_FALSE((*b)->is_directory());
    CHECK_FALSE((*b)->model_json().has_value());
    CHECK(Names(**b) == kSavezNames);
    const WeightEntry& kernel = (*b)->weights()[0];
    CHECK(kernel.shape == std::vector<uint64_t>{3, 4});
    CHECK(kernel.where == test::SourcePath("data/reader/") + file + ": member 'dense/kernel.npy'");
    for (int pass = 0; pass < 2; ++pass) {  // OpenData may be called again
      auto data = ReadData(**b, kernel);
      REQUIRE_MESSAGE(data.ok(), data.status().message());
      CHECK(*data == Floats({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
    }
    for (const WeightEntry& w : (*b)->weights()) {
      CAPTURE(w.name);
      auto data = ReadData(**b, w);
      REQUIRE_MESSAGE(data.ok(), data.status().message());
      CHECK(data->size() == w.data_bytes);
    }
  }
}

TEST_CASE("a single .npy bundle is one weight named by the file stem") {
  test::TempDir dir;
  test::WriteFile(dir / "my.weights.npy", Fixture("v3.npy"));
  auto b = Bundle::Open(dir / "my.weights.npy");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  CHECK(Names(**b) == std::vector<std::string>{"my.weights"});
  CHECK((*b)->weights()[0].data_offset == 128);  // a v3 header is padded to 64 bytes
  auto data = ReadData(**b, (*b)->weights()[0]);
  REQUIRE(data.ok());
  CHECK(*data == Floats({0, 1, 2, 3, 4, 5}));
}

TEST_CASE("a folder bundle is walked recursively and ordered bytewise by path") {
  test::TempDir dir;
  std::string one = Npy("<f4", "(1,)", Floats({1}));
  for (const char* f : {"b.npy", "a/z.npy", "a.npy", "A.npy", "a/b/c.npy", "\xc3\xa9.npy"}) {
    test::WriteFile(dir / f, one);
  }
  test::WriteFile(dir / "sub/w.npz", Fixture("descriptor.npz"));
  test::WriteFile(dir / "top.npz", Fixture("zip64.npz"));
  test::WriteFile(dir / "model.json", "{}");
  test::WriteFile(dir / "sub/model.json", "{}");
  test::WriteFile(dir / "README.md", "notes");
  auto b = Bundle::Open(dir.path() + "/");
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  CHECK((*b)->is_directory());
  CHECK((*b)->path() == dir.path());
  CHECK(Names(**b) == std::vector<std::string>{"A", "a", "a/b/c", "a/z", "b", "sub/dense/kernel",
                                               "sub/dense/bias", "sub/step", "sub/mask",
                                               "dense/kernel", "dense/bias", "step", "\xc3\xa9"});
  REQUIRE((*b)->model_json().has_value());
  CHECK(*(*b)->model_json() == dir / "model.json");
  const WeightEntry& abc = (*b)->weights()[2];
  CHECK(abc.where == dir / "a/b/c.npy");
  for (const WeightEntry& w : (*b)->weights()) {
    CAPTURE(w.name);
    auto data = ReadData(**b, w);
    REQUIRE_MESSAGE(data.ok(), data.status().message());
    CHECK(data->size() == w.data_bytes);
  }
  CHECK(*ReadData(**b, (*b)->weights()[5]) == Floats({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST_CASE("a folder of more .npz files than the descriptor limit allows fails up front") {
  test::TempDir dir;
  for (int i = 0; i < 40; ++i) {
    test::WriteFile(dir / ("d" + std::to_string(i) + "/w.npz"), Fixture("descriptor.npz"));
  }
  struct rlimit saved {};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  if (saved.rlim_max != RLIM_INFINITY && saved.rlim_max < 256) return;  // cannot set 256 here
  struct rlimit low = saved;
  low.rlim_cur = 256;  // a publish may keep 32 archives open
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);
  auto refused = Bundle::Open(dir.path());
  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().kind() == ErrorKind::kBundle);  // quarantined, not retried
  CHECK_MESSAGE(refused.status().message() ==
                    dir.path() +
                        ": holds 40 .npz files, each kept open while the folder is published, but "
                        "this process may open only 256 files (a bundle may use an eighth: 32); "
                        "merge them into fewer files, or raise the limit (LimitNOFILE= in the "
                        "service, ulimit -n in a shell)",
                refused.status().message());
  if (saved.rlim_cur != RLIM_INFINITY && saved.rlim_cur < 40 * 8) return;
  auto opened = Bundle::Open(dir.path());  // the same folder under the usual limit
  REQUIRE_MESSAGE(opened.ok(), opened.status().message());
  CHECK((*opened)->weights().size() == 40 * 4);  // descriptor.npz holds 4
}

TEST_CASE("hidden and temporary names are skipped") {
  struct Row {
    const char* name;
    bool ignored;
  };
  const Row rows[] = {
      {".hidden.npy", true}, {".ready", true},        {"w.npy.tmp", true},
      {"w.npy.part", true},  {"w.npy.partial", true}, {"w.npy.crdownload", true},
      {"w.npy~", true},      {"w.npy", false},        {"w.tmp.npy", false},
      {"model.json", false}, {"tmp", false},          {"part.npy", false},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.name));
    CHECK(IsIgnoredName(r.name) == r.ignored);
  }
  test::TempDir dir;
  std::string one = Npy("|u1", "()", "x");
  for (const Row& r : rows) test::WriteFile(dir / r.name, one);
  test::WriteFile(dir / ".git/objects/x.npy", one);
  auto b = Bundle::Open(dir.path());
  REQUIRE_MESSAGE(b.ok(), b.status().message());
  CHECK(Names(**b) == std::vector<std::string>{"part", "w", "w.tmp"});  // "tmp": not .npy
}

TEST_CASE("symbolic links are refused, never followed") {
  test::TempDir dir;
  test::TempDir outside;
  test::WriteFile(outside / "secret.npy", Npy("<f4", "(1,)", Floats({7})));
  std::string one = Npy("<f4", "(1,)", Floats({1}));
  struct Row {
    const char* name;
    const char* link;  // created inside the bundle, pointing at `target`
    std::string target;
    const char* error;  // relative to the bundle root
  };
  const Row rows[] = {
      {"file", "sub/evil.npy", outside / "secret.npy", "/sub/evil.npy"},
      {"dir", "sub/linked", outside.path(), "/sub/linked"},
      {"dangling", "gone.npy", outside / "nothing.npy", "/gone.npy"},
      {"not a weight", "notes.txt", "/etc/hostname", "/notes.txt"},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.name));
    test::TempDir b;
    test::WriteFile(b / "sub/ok.npy", one);
    REQUIRE(symlink(r.target.c_str(), (b / r.link).c_str()) == 0);
    auto opened = Bundle::Open(b.path());
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.status().kind() == ErrorKind::kBundle);
    CHECK(opened.status().message() ==
          b.path() + r.error + ": is a symbolic link; weightdrop never follows links");
  }
  SUBCASE("the bundle path itself") {
    REQUIRE(symlink((outside / "secret.npy").c_str(), (dir / "link.npy").c_str()) == 0);
    auto opened = Bundle::Open(dir / "link.npy");
    REQUIRE_FALSE(opened.ok());
    CHECK(opened.status().message() ==
          dir / "link.npy" + ": is a symbolic link; weightdrop never follows links");
  }
  SUBCASE("a hidden link is ignored, not followed") {
    test::WriteFile(dir / "w.npy", one);
    REQUIRE(symlink(outside.path().c_str(), (dir / ".cache").c_str()) == 0);
    auto opened = Bundle::Open(dir.path());
    REQUIRE_MESSAGE(opened.ok(), opened.status().message());
    CHECK(Names(**opened) == std::vector<std::string>{"w"});
  }
}

TEST_CASE("a folder swapped for a link after indexing is not followed when reading") {
  test::TempDir dir;
  test::TempDir outside;
  test::WriteFile(dir / "sub/w.npy", Npy("<f4", "(1,)", Floats({1})));
  test::WriteFile(outside / "w.npy", Npy("<f4", "(1,)", Floats({9})));
  auto b = Bundle::Open(dir.path());
  REQUIRE(b.ok());
  REQUIRE(rename((dir / "sub").c_str(), (dir / "old").c_str()) == 0);
  REQUIRE(symlink(outside.path().c_str(), (dir / "sub").c_str()) == 0);
  auto data = ReadData(**b, (*b)->weights()[0]);
  REQUIRE_FALSE(data.ok());
  CHECK(data.status().message() ==
        dir / "sub" + ": is a symbolic link; weightdrop never follows links");
}

TEST_CASE("duplicate weight names are refused naming both sources") {
  test::TempDir dir;
  test::WriteFile(dir / "dense/kernel.npy", Npy("<f4", "(1,)", Floats({1})));
  test::WriteFile(dir / "w.npz", Fixture("savez.npz"));  // also holds dense/kernel
  auto b = Bundle::Open(dir.path());
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().kind() == ErrorKind::kBundle);
  CHECK(b.status().message() == "duplicate weight name 'dense/kernel': from " +
                                    dir / "dense/kernel.npy" + " and from " + dir / "w.npz" +
                                    ": member 'dense/kernel.npy'");
}

TEST_CASE("bad bundles are refused with the file and the reason") {
  std::string one = Npy("<f4", "(1,)", Floats({1}));
  std::string six = Npy("<f4", "(2, 3)", Floats({0, 1, 2, 3, 4, 5}));
  struct Row {
    const char* name;
    std::vector<std::pair<std::string, std::string>> files;  // relative path, bytes
    std::string open;                                        // path opened, relative
    ErrorKind kind;
    std::string error;  // after "<root>/"
  };
  const Row rows[] = {
      {"truncated npy",
       {{"w.npy", six.substr(0, six.size() - 4)}},
       "",
       ErrorKind::kIncomplete,
       "w.npy: truncated: header declares shape (2, 3) float32 = 24 bytes of data but the file "
       "holds 20"},
      {"trailing bytes",
       {{"w.npy", six + "xyzw"}},
       "w.npy",
       ErrorKind::kBundle,
       "w.npy: header declares shape (2, 3) float32 = 24 bytes of data but the file holds 28 "
       "(trailing bytes)"},
      {"member size",
       {{"m.npz", Fixture("mismatch.npz")}},
       "",
       ErrorKind::kBundle,
       "m.npz: member 'w.npy': truncated: header declares shape (4,) float32 = 16 bytes of data "
       "but the member holds 12"},
      {"object dtype",
       {{"a/w.npy", Npy("|O", "(1,)", "12345678")}},
       "",
       ErrorKind::kBundle,
       "a/w.npy: .npy header: dtype descr '|O' is object: reading it would need unpickling; "
       "weightdrop never unpickles at byte 20"},
      {"not npy member",
       {{"n.npz", Fixture("notes.npz")}},
       "n.npz",
       ErrorKind::kBundle,
       "n.npz: member 'notes.txt': is not a .npy (np.savez writes only .npy members)"},
      {"duplicate members",
       {{"d.npz", Fixture("dup.npz")}},
       "d.npz",
       ErrorKind::kBundle,
       "d.npz: two members have the same name"},
      {"bad utf-8 member",
       {{"u.npz", Fixture("badname.npz")}},
       "",
       ErrorKind::kBundle,
       "u.npz: member 'bad\\xff.npy': weight name 'bad\\xff' is not valid UTF-8"},
      {"bad utf-8 file",
       {{"bad\xc3(.npy", one}},
       "",
       ErrorKind::kBundle,
       "bad\xc3(.npy: weight name 'bad\\xc3(' is not valid UTF-8"},
      {"control character",
       {{"tab\there.npy", one}},
       "",
       ErrorKind::kBundle,
       "tab\there.npy: weight name 'tab\\x09here' holds a control character"},
      {"truncated zip",
       {{"t.npz", Fixture("savez.npz").substr(0, 700)}},
       "",
       ErrorKind::kIncomplete,
       "t.npz: zip has no end-of-central-directory record: truncated or still being written"},
      {"empty folder", {{"model.json", "{}"}}, "", ErrorKind::kBundle, ": bundle holds no weights"},
      {"other extension",
       {{"w.bin", one}},
       "w.bin",
       ErrorKind::kBundle,
       "w.bin: a bundle is a .npz, .npy or .safetensors file or a folder"},
      {"npy that is a zip",
       {{"w.npy", Fixture("savez.npz")}},
       "w.npy",
       ErrorKind::kBundle,
       "w.npy: not a .npy file: expected magic \\x93NUMPY, found 'PK\\x03\\x04\\x14\\x00' (this "
       "looks like a zip: a .npz?)"},
  };
  for (const Row& r : rows) {
    CAPTURE(std::string(r.name));
    test::TempDir dir;
    for (const auto& [rel, bytes] : r.files) test::WriteFile(dir / rel, bytes);
    std::string path = r.open.empty() ? dir.path() : dir / r.open;
    auto b = Bundle::Open(path);
    REQUIRE_FALSE(b.ok());
    CHECK(b.status().kind() == r.kind);
    std::string want = r.error[0] == ':' ? dir.path() + r.error : dir / r.error;
    CHECK_MESSAGE(b.status().message().rfind(want, 0) == 0, b.status().message());
  }
}

TEST_CASE("fifos are refused, inside a folder and as the bundle itself") {
  test::TempDir dir;
  test::WriteFile(dir / "b/w.npy", Npy("<f4", "(1,)", Floats({1})));
  REQUIRE(mkfifo((dir / "b/pipe.npy").c_str(), 0600) == 0);
  auto b = Bundle::Open(dir / "b");
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().message() ==
        dir / "b/pipe.npy" + ": is not a regular file or folder (fifo, socket or device)");
  auto p = Bundle::Open(dir / "b/pipe.npy");
  REQUIRE_FALSE(p.ok());
  CHECK(p.status().message() == dir / "b/pipe.npy" + ": is not a regular file or folder");
}

TEST_CASE("a .npy that changes size after indexing is caught when its data is opened") {
  test::TempDir dir;
  std::string one = Npy("<f4", "(1,)", Floats({1}));
  test::WriteFile(dir / "w.npy", one);
  auto b = Bundle::Open(dir.path());
  REQUIRE(b.ok());
  test::WriteFile(dir / "w.npy", one + "more");
  auto data = ReadData(**b, (*b)->weights()[0]);
  REQUIRE_FALSE(data.ok());
  CHECK(data.status().kind() == ErrorKind::kIncomplete);
  CHECK(data.status().message() ==
        dir / "w.npy" + ": changed size since it was indexed (132 bytes then, 136 now)");
}

TEST_CASE("a missing bundle path is an environment error") {
  test::TempDir dir;
  auto b = Bundle::Open(dir / "nope.npz");
  REQUIRE_FALSE(b.ok());
  CHECK(b.status().kind() == ErrorKind::kEnvironment);
  CHECK(b.status().message() == "open " + dir / "nope.npz" + ": No such file or directory");
}

TEST_CASE("every golden bundle opens and streams all of its data") {
  int count = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::SourcePath("golden"))) {
    std::string npz = e.path().string() + "/bundle.npz";
    if (!std::filesystem::exists(npz)) continue;
    CAPTURE(npz);
    auto b = Bundle::Open(npz);
    REQUIRE_MESSAGE(b.ok(), b.status().message());
    CHECK_FALSE((*b)->weights().empty());
    for (const WeightEntry& w : (*b)->weights()) {
      auto data = ReadData(**b, w);
      REQUIRE_MESSAGE(data.ok(), data.status().message());
      CHECK(data->size() == w.data_bytes);
    }
    ++count;
  }
  CHECK(count >= 10);
}

size_t OpenFdCount() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) n += !e.is_directory();
  return n;
}

TEST_CASE("opening bundles, good or bad, leaks no file descriptors") {
  test::TempDir dir;
  test::WriteFile(dir / "ok/a/w.npy", Npy("<f4", "(1,)", Floats({1})));
  test::WriteFile(dir / "ok/b.npz", Fixture("savez_compressed.npz"));
  test::WriteFile(dir / "bad/a/b/w.npy", Npy("|O", "(1,)", "12345678"));
  test::WriteFile(dir / "trunc/t.npz", Fixture("savez.npz").substr(0, 500));
  test::WriteFile(dir / "crc/c.npz", Fixture("bad_crc.npz"));
  test::WriteFile(dir / "link/a/w.npy", Npy("<f4", "(1,)", Floats({1})));
  REQUIRE(symlink("/etc", (dir / "link/a/etc").c_str()) == 0);
  size_t before = OpenFdCount();
  for (const char* sub : {"ok", "bad", "trunc", "crc", "link", "missing"}) {
    auto b = Bundle::Open(dir / sub);
    if (b.ok()) {
      for (const WeightEntry& w : (*b)->weights()) (void)ReadData(**b, w);
    }
  }
  CHECK(OpenFdCount() == before);
}

}  // namespace
}  // namespace wd
