#include "core/pipeline.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "config/pipeline_config.h"
#include "core/inspector.h"
#include "core/publisher.h"
#include "core/verifier.h"
#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;
using test::Floats;
using test::Npy;

const char* kGolden[] = {"01-one-float32",        "02-strings", "03-mixed-packed-sharded",
                         "04-auto-conversions",   "05-uint8",   "06-uint16-float16",
                         "07-groups-fallthrough", "08-complex", "09-fortran-3d-compressed"};

Result<BundlePublish> Publish(const std::string& bundle, const std::string& serve,
                              const PipelineOptions& o = PipelineOptions(),
                              const std::string& model = "m") {
  PublishSettings s{.model = model, .options = o, .source_path = "", .on_planned = nullptr};
  return PublishBundle(bundle, s, *NewLocalStore(DefaultFileSystem(), serve), nullptr);
}

// float64 elements, little-endian (or big-endian when `big`).
std::string Doubles(std::initializer_list<double> v, bool big = false) {
  std::string out;
  for (double d : v) {
    char b[8];
    std::memcpy(b, &d, 8);
    if (big) std::reverse(b, b + 8);
    out.append(b, 8);
  }
  return out;
}

// Every file of a tree with its bytes (symlinks as "-> target").
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = fs::relative(e.path(), root).string();
    if (e.is_symlink()) {
      out[rel] = "-> " + fs::read_symlink(e.path()).string();
    } else if (e.is_regular_file()) {
      out[rel] = test::ReadFile(e.path().string());
    }
  }
  return out;
}

TEST_CASE("golden cases publish byte-identical shards and manifest") {
  for (const char* name : kGolden) {
    CAPTURE(std::string(name));
    test::TempDir d;
    const std::string dir = test::SourcePath(std::string("golden/") + name);
    auto o = LoadPipelineConfig(dir + "/config.yaml");
    REQUIRE_MESSAGE(o.ok(), o.status().message());
    auto r = Publish(dir + "/bundle.npz", d / "s", *o);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir + "/expected")) {
      const std::string f = e.path().filename().string();
      CAPTURE(f);
      CHECK(test::ReadFile(r->result.version_dir + "/" + f) == test::ReadFile(e.path().string()));
      ++files;
    }
    // Only the expected files plus publish.json.
    CHECK(std::distance(fs::directory_iterator(r->result.version_dir), {}) ==
          static_cast<long>(files + 1));
  }
}

TEST_CASE("golden case 10 keeps its group bytes but is cut safely for tfjs") {
  test::TempDir d;
  const std::string dir = test::SourcePath("golden/10-tfjs-uniform-shard-hazard");
  auto o = LoadPipelineConfig(dir + "/config.yaml");
  REQUIRE(o.ok());
  auto r = Publish(dir + "/bundle.npz", d / "s", *o);
  REQUIRE(r.ok());
  CHECK(r->plan.hazard_split);
  const std::string v = r->result.version_dir;
  CHECK(test::ReadFile(v + "/group1-shard1of1.bin") ==
        test::ReadFile(dir + "/expected/group1-shard1of1.bin"));
  CHECK(test::ReadFile(v + "/group2-shard1of2.bin") + test::ReadFile(v + "/group2-shard2of2.bin") ==
        test::ReadFile(dir + "/expected/group2-shard1of1.bin"));
  auto report = Verify(d / "s/m", "");
  REQUIRE(report.ok());
  CHECK(report->problems.empty());
  CHECK(report->warnings.empty());
}

TEST_CASE("Fortran-order arrays are reordered to C order") {
  test::TempDir d;
  // shape (2, 3) in Fortran order: columns stored first.
  // C order values: [[0, 1, 2], [3, 4, 5]] -> Fortran bytes 0, 3, 1, 4, 2, 5.
  test::WriteFile(d / "b/t.npy", Npy("<f4", "(2, 3)", Floats({0, 3, 1, 4, 2, 5}), true));
  // shape (2, 2, 2): C index (i, j, k) = 4i + 2j + k; Fortran offset i + 2j + 4k.
  std::string f3(8 * 4, '\0');
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 2; ++k) {
        const float v = static_cast<float>(4 * i + 2 * j + k);
        std::memcpy(&f3[4 * (i + 2 * j + 4 * k)], &v, 4);
      }
  test::WriteFile(d / "b/u.npy", Npy("<f4", "(2, 2, 2)", f3, true));
  auto r = Publish(d / "b", d / "s");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(test::ReadFile(r->result.version_dir + "/group1-shard1of1.bin") ==
        Floats({0, 1, 2, 3, 4, 5}) + Floats({0, 1, 2, 3, 4, 5, 6, 7}));
}

TEST_CASE("a weight larger than one chunk streams across chunks and shards unchanged") {
  test::TempDir d;
  const int n = 600000;  // > 2 chunks of 256 Ki elements
  std::string data(4 * n, '\0');
  for (int i = 0; i < n; ++i) {
    const float v = static_cast<float>(i) * 0.5f;
    std::memcpy(&data[4 * i], &v, 4);
  }
  test::WriteFile(d / "w.npy", Npy("<f4", "(600000,)", data));
  PipelineOptions o;
  o.shard_size = 1000003;  // prime: shard edges fall mid-element
  auto r = Publish(d / "w.npy", d / "s", o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  std::string joined;
  for (const auto& s : r->plan.groups[0].shards) {
    joined += test::ReadFile(r->result.version_dir + "/" + s.name);
  }
  CHECK(joined == data);
  CHECK(r->plan.groups[0].shards.size() == 3);
}

TEST_CASE("a bad weight fails the publish and leaves the serve folder as it was") {
  test::TempDir d;
  test::WriteFile(d / "good.npy", Npy("<f4", "(2,)", Floats({1, 2})));
  REQUIRE(Publish(d / "good.npy", d / "s").ok());
  const auto before = Snapshot(d / "s");
  struct Row {
    const char* what;
    std::string file;
    QuantDtype quant;
    const char* expect;
  } rows[] = {
      {"int64 overflow", Npy("<i8", "(2,)", std::string("\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0", 16)),
       QuantDtype::kNone, "4294967296"},
      {"NaN under uint8", Npy("<f4", "(2,)", Floats({1, NAN})), QuantDtype::kUint8, "NaN"},
      {"Inf under uint16", Npy("<f4", "(2,)", Floats({1, -INFINITY})), QuantDtype::kUint16,
       "infinite"},
      {"float16 overflow", Npy("<f4", "(2,)", Floats({1, 70000})), QuantDtype::kFloat16, "float16"},
      {"range beyond float32", Npy("<f4", "(2,)", Floats({-3e38f, 3e38f})), QuantDtype::kUint8,
       "wider than float32"},
      {"float64 beyond float32 under uint8", Npy("<f8", "(2,)", Doubles({1, -1e300})),
       QuantDtype::kUint8,
       "element 1 is infinite as float32: its float64 value -1e+300 is beyond "
       "float32's range, and converting rounds it to -Inf"},
      {"big-endian float64 beyond float32", Npy(">f8", "(1,)", Doubles({1e39}, true)),
       QuantDtype::kUint16, "its float64 value 1e+39 is beyond"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.what);
    test::WriteFile(d / "bad/w.npy", r.file);
    PipelineOptions o;
    o.quantize.fallthrough = r.quant;
    auto p = Publish(d / "bad/w.npy", d / "s", o);
    REQUIRE_FALSE(p.ok());
    CHECK(p.status().message().find("w.npy") != std::string::npos);
    CHECK(p.status().message().find("'w'") != std::string::npos);
    CHECK_MESSAGE(p.status().message().find(r.expect) != std::string::npos, p.status().message());
    CHECK(Snapshot(d / "s") == before);
  }
}

TEST_CASE("verify finds a corrupted shard and checks a bundle against the version") {
  test::TempDir d;
  test::WriteFile(d / "a.npy", Npy("<f4", "(3,)", Floats({1, 2, 3})));
  test::WriteFile(d / "b.npy", Npy("<f4", "(3,)", Floats({1, 2, 4})));
  PipelineOptions o;
  o.quantize.fallthrough = QuantDtype::kUint8;
  auto r = Publish(d / "a.npy", d / "s", o);
  REQUIRE(r.ok());
  auto ok = Verify(d / "s/m", d / "a.npy");
  REQUIRE(ok.ok());
  CHECK(ok->problems.empty());
  CHECK(ok->shards_checked == 1);
  auto other = Verify(d / "s/m/1", d / "b.npy");
  REQUIRE(other.ok());
  CHECK_FALSE(other->problems.empty());

  const std::string shard = r->result.version_dir + "/group1-shard1of1.bin";
  std::string bytes = test::ReadFile(shard);
  bytes[0] ^= 1;
  fs::permissions(shard, fs::perms::owner_write, fs::perm_options::add);
  test::WriteFile(shard, bytes);
  auto bad = Verify(d / "s/m", "");
  REQUIRE(bad.ok());
  REQUIRE(bad->problems.size() == 1);
  CHECK(bad->problems[0].find("group1-shard1of1.bin") != std::string::npos);
}

TEST_CASE("verify warns about the tfjs hazard in folders written by other tools") {
  test::TempDir d;
  const std::string exp = test::SourcePath("golden/10-tfjs-uniform-shard-hazard/expected");
  fs::create_directories(d / "s/x/1");
  for (const auto& e : fs::directory_iterator(exp)) {
    fs::copy_file(e.path(), d / ("s/x/1/" + e.path().filename().string()));
  }
  auto r = Verify(d / "s/x/1", "");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->problems.empty());
  REQUIRE(r->warnings.size() == 1);
  CHECK(r->warnings[0].find("tfjs") != std::string::npos);
}

TEST_CASE("inspect reports quantization error within half a step") {
  test::TempDir d;
  test::WriteFile(d / "b/k.npy", Npy("<f4", "(4,)", Floats({-1, 0, 0.3f, 1})));
  test::WriteFile(d / "b/n.npy", Npy("<i2", "(2,)", std::string(4, '\0')));
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"k"}}};
  auto r = Inspect(d / "b", o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->rows.size() == 2);
  CHECK(r->rows[0].name == "k");
  CHECK(r->rows[0].quantization == "uint8");
  CHECK(r->rows[0].bytes == 4);
  CHECK(r->rows[0].max_abs_error > 0);
  CHECK(r->rows[0].max_abs_error <= 2.0 / 255 / 2 + 1e-7);
  CHECK(r->rows[0].rms_error <= r->rows[0].max_abs_error);
  CHECK(r->rows[1].source_dtype == "<i2");
  CHECK(r->rows[1].dtype == "int32");
  CHECK(r->rows[1].quantization.empty());
}

TEST_CASE("inspect refuses an int64 that does not fit int32, as publish does") {
  test::TempDir d;
  test::WriteFile(d / "i.npy",
                  Npy("<i8", "(2,)", std::string("\0\0\0\0\0\0\0\0\0\0\0\x80\0\0\0\0", 16)));
  auto r = Inspect(d / "i.npy", PipelineOptions());
  REQUIRE(!r.ok());
  CHECK_MESSAGE(r.status().message().find("element 1") != std::string::npos, r.status().message());
  CHECK(r.status().message().find("2147483648") != std::string::npos);
}

TEST_CASE("inspect's float16 error ignores NaN and ±Inf, which float16 keeps exactly") {
  test::TempDir d;
  test::WriteFile(d / "h.npy", Npy("<f4", "(4,)", Floats({NAN, INFINITY, -INFINITY, 0.1f})));
  PipelineOptions o;
  o.quantize.fallthrough = QuantDtype::kFloat16;
  auto r = Inspect(d / "h.npy", o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->rows.size() == 1);
  CHECK(std::isfinite(r->rows[0].rms_error));
  CHECK(r->rows[0].max_abs_error > 0);  // 0.1's rounding
  CHECK(r->rows[0].max_abs_error < 1e-4);
}

TEST_CASE("a group whose weights encode to no bytes has no shards and paths []") {
  test::TempDir d;
  test::WriteFile(d / "b/a/empty.npy", Npy("<f4", "(0, 3)", ""));
  test::WriteFile(d / "b/b/w.npy", Npy("<f4", "(1,)", Floats({5})));
  PipelineOptions o;
  o.grouping.kind = Grouping::Kind::kByPrefix;
  auto r = Publish(d / "b", d / "s", o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(test::ReadFile(r->result.version_dir + "/weights_manifest.json") ==
        "[{\"paths\": [], \"weights\": [{\"name\": \"a/empty\", \"shape\": [0, 3], "
        "\"dtype\": \"float32\"}]}, {\"paths\": [\"group2-shard1of1.bin\"], \"weights\": "
        "[{\"name\": \"b/w\", \"shape\": [1], \"dtype\": \"float32\"}]}]");
}

TEST_CASE("the default model name is the bundle's name without extension") {
  CHECK(DefaultModelName("/x/resnet.npz") == "resnet");
  CHECK(DefaultModelName("w.npy") == "w");
  CHECK(DefaultModelName("/drops/bert/") == "bert");
  CHECK(DefaultModelName("a.b.npz") == "a.b");
}

TEST_CASE("progress ends with every weight counted, the empty and the last one included") {
  test::TempDir d;
  test::WriteFile(d / "b/a.npy", Npy("<f4", "(2,)", Floats({1, 2})));
  test::WriteFile(d / "b/b.npy", Npy("<f4", "(0,)", ""));  // no bytes: no chunk reports it
  test::WriteFile(d / "b/c.npy", Npy("<f4", "(3,)", Floats({3, 4, 5})));
  std::vector<Progress> seen;
  PublishSettings s{.model = "m",
                    .keep_versions = 3,
                    .skip_if_unchanged = true,
                    .options = {},
                    .source_path = "",
                    .on_planned = nullptr};
  auto r = PublishBundle(d / "b", s, *NewLocalStore(DefaultFileSystem(), d / "s"),
                         [&](const Progress& p) { seen.push_back(p); });
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(!seen.empty());
  CHECK(seen.back().weights_done == 3);
  CHECK(seen.back().weights_total == 3);
  CHECK(seen.back().bytes_done == 20);
  CHECK(seen.back().bytes_total == 20);
  for (size_t i = 1; i < seen.size(); ++i) {
    CHECK(seen[i].weights_done >= seen[i - 1].weights_done);
    CHECK(seen[i].bytes_done >= seen[i - 1].bytes_done);
  }
}

// Publishes `bundle` calling `change` at its first progress report, i.e.
// after reading has begun.
Result<BundlePublish> PublishWhileChanging(const std::string& bundle, const std::string& serve,
                                           const std::function<void()>& change) {
  PublishSettings s{.model = "m", .options = {}, .source_path = "", .on_planned = nullptr};
  bool changed = false;
  return PublishBundle(bundle, s, *NewLocalStore(DefaultFileSystem(), serve), [&](const Progress&) {
    if (!changed) change();
    changed = true;
  });
}

TEST_CASE("a bundle that changes while it is published is kIncomplete and nothing is published") {
  test::TempDir d;
  const std::string npy = Npy("<f4", "(4,)", Floats({1, 2, 3, 4}));
  auto expect_incomplete = [&](const Result<BundlePublish>& r, const std::string& says) {
    REQUIRE(!r.ok());
    CHECK(r.status().kind() == ErrorKind::kIncomplete);
    CHECK_MESSAGE(r.status().message().find(says) != std::string::npos, r.status().message());
    CHECK(r.status().message().find("nothing was published") != std::string::npos);
    CHECK(!fs::exists(d / "s/m/current"));
    CHECK(!fs::exists(d / "s/m/1"));
  };
  SUBCASE("a file appended to (a writer still writing)") {
    test::WriteFile(d / "w.npy", npy);
    auto r = PublishWhileChanging(d / "w.npy", d / "s", [&] {
      std::ofstream(d / "w.npy", std::ios::app | std::ios::binary) << std::string(64, '\0');
    });
    expect_incomplete(r, "w.npy: changed size while it was published (144 bytes, then 208)");
  }
  SUBCASE("a file rewritten in place, same size") {
    test::WriteFile(d / "w.npy", npy);
    const auto t = fs::last_write_time(d / "w.npy");
    auto r = PublishWhileChanging(d / "w.npy", d / "s", [&] {
      fs::last_write_time(d / "w.npy", t + std::chrono::seconds(1));
    });
    expect_incomplete(r, "w.npy: was modified or replaced while it was published");
    auto again = Publish(d / "w.npy", d / "s");  // once it stops changing, it publishes
    CHECK_MESSAGE(again.ok(), again.status().message());
  }
  SUBCASE("a file added to a folder bundle") {
    test::WriteFile(d / "b/a.npy", npy);
    auto r = PublishWhileChanging(d / "b", d / "s", [&] { test::WriteFile(d / "b/z.npy", npy); });
    expect_incomplete(r, "were added to or removed from");
    auto again = Publish(d / "b", d / "s");
    CHECK_MESSAGE(again.ok(), again.status().message());
  }
  SUBCASE("a stored .npz appended to (the digest is fed by the reader)") {
    fs::copy_file(test::SourcePath("data/reader/savez.npz"), d / "b.npz");
    auto r = PublishWhileChanging(d / "b.npz", d / "s", [&] {
      std::ofstream(d / "b.npz", std::ios::app | std::ios::binary) << "tail";
    });
    expect_incomplete(r, "b.npz: changed size while it was published");
  }
}

}  // namespace
}  // namespace wd

namespace wd {
namespace {

TEST_CASE("deflated members quantize to the same bytes as stored ones (one inflate, two passes)") {
  for (QuantDtype q : {QuantDtype::kUint8, QuantDtype::kUint16}) {
    CAPTURE(QuantDtypeName(q));
    test::TempDir d;
    PipelineOptions o;
    o.quantize.fallthrough = q;
    auto stored = Publish(test::SourcePath("data/reader/savez.npz"), d / "a", o);
    auto deflated = Publish(test::SourcePath("data/reader/savez_compressed.npz"), d / "b", o);
    REQUIRE_MESSAGE(stored.ok(), stored.status().message());
    REQUIRE_MESSAGE(deflated.ok(), deflated.status().message());
    CHECK(test::ReadFile(stored->result.version_dir + "/weights_manifest.json") ==
          test::ReadFile(deflated->result.version_dir + "/weights_manifest.json"));
    CHECK(test::ReadFile(stored->result.version_dir + "/group1-shard1of1.bin") ==
          test::ReadFile(deflated->result.version_dir + "/group1-shard1of1.bin"));
  }
}

TEST_CASE("a renamed single .npy is a new bundle: its name is its weight's name") {
  test::TempDir d;
  fs::create_directories(d / "a");
  fs::create_directories(d / "b");
  fs::create_directories(d / "c");
  const std::string bytes = Npy("<f4", "(2,)", Floats({1, 2}));
  test::WriteFile(d / "a/encoder.npy", bytes);
  test::WriteFile(d / "b/decoder.npy", bytes);
  test::WriteFile(d / "c/decoder.npy", bytes);
  auto first = Publish(d / "a/encoder.npy", d / "s");
  REQUIRE(first.ok());
  auto renamed = Publish(d / "b/decoder.npy", d / "s");
  REQUIRE_MESSAGE(renamed.ok(), renamed.status().message());
  CHECK_FALSE(renamed->result.unchanged);
  CHECK(renamed->result.version == 2);
  CHECK(test::ReadFile(d / "s/m/weights_manifest.json").find("\"decoder\"") != std::string::npos);
  // The same name and bytes from another folder is the same bundle.
  auto again = Publish(d / "c/decoder.npy", d / "s");
  REQUIRE(again.ok());
  CHECK(again->result.unchanged);
}

TEST_CASE("bundle digests cover names: .npy stem, folder paths and .npz members") {
  test::TempDir d;
  const std::string bytes = Npy("<f4", "(2,)", Floats({1, 2}));
  fs::create_directories(d / "f1");
  fs::create_directories(d / "f2");
  test::WriteFile(d / "x.npy", bytes);
  test::WriteFile(d / "y.npy", bytes);
  test::WriteFile(d / "f1/x.npy", bytes);
  test::WriteFile(d / "f2/y.npy", bytes);
  auto digest = [](const std::string& p) {
    auto b = Bundle::Open(p);
    REQUIRE(b.ok());
    auto h = BundleDigest(**b);
    REQUIRE(h.ok());
    return *h;
  };
  CHECK(digest(d / "x.npy") != digest(d / "y.npy"));
  CHECK(digest(d / "f1") != digest(d / "f2"));
  // A single .npy hashes like a folder holding just that file.
  CHECK(digest(d / "x.npy") == digest(d / "f1"));
}

TEST_CASE("the bundle fingerprint covers names, sizes, heads and tails, not middles") {
  test::TempDir d;
  const std::string data(65536, '\1');
  fs::create_directories(d / "f");
  test::WriteFile(d / "x.npy", Npy("<f4", "(16384,)", data));
  test::WriteFile(d / "y.npy", Npy("<f4", "(16384,)", data));
  test::WriteFile(d / "f/x.npy", Npy("<f4", "(16384,)", data));
  auto fingerprint = [](const std::string& p) {
    auto b = Bundle::Open(p);
    REQUIRE(b.ok());
    auto h = BundleFingerprint(**b);
    REQUIRE_MESSAGE(h.ok(), h.status().message());
    return *h;
  };
  const std::string x = fingerprint(d / "x.npy");
  CHECK(x.size() == 64);
  CHECK(x != fingerprint(d / "y.npy"));
  CHECK(x == fingerprint(d / "f"));  // files named as in the bundle digest
  for (const auto& [at, same] :
       {std::pair<size_t, bool>{100, false}, {40000, true}, {65535 - 100, false}}) {
    CAPTURE(at);
    std::string changed = data;
    changed[at] = '\2';
    test::WriteFile(d / "x.npy", Npy("<f4", "(16384,)", changed));
    CHECK((fingerprint(d / "x.npy") == x) == same);
  }
}

TEST_CASE("an unchanged bundle is found unchanged before anything is encoded") {
  test::TempDir d;
  std::string data(65536, '\1');
  test::WriteFile(d / "b/w.npy", Npy("<f4", "(16384,)", data));
  size_t progress_calls = 0;
  auto publish = [&] {
    PublishSettings s{.model = "m",
                      .keep_versions = 3,
                      .skip_if_unchanged = true,
                      .options = PipelineOptions(),
                      .source_path = "",
                      .on_planned = nullptr};
    progress_calls = 0;
    auto r = PublishBundle(d / "b", s, *NewLocalStore(DefaultFileSystem(), d / "s"),
                           [&](const Progress&) { ++progress_calls; });
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    return std::move(r).value();
  };
  BundlePublish first = publish();
  const std::string record_path = first.result.version_dir + "/publish.json";
  auto record = nlohmann::json::parse(test::ReadFile(record_path));
  CHECK(record["source"]["fingerprint"].get<std::string>().size() == 64);

  BundlePublish again = publish();
  CHECK(again.result.unchanged);
  CHECK(progress_calls == 0);
  CHECK_FALSE(fs::exists(first.result.version_dir + "/../2"));

  // A change the fingerprint does not sample: hashed up front, found
  // different, published.
  data[40000] = '\2';
  test::WriteFile(d / "b/w.npy", Npy("<f4", "(16384,)", data));
  BundlePublish changed = publish();
  CHECK_FALSE(changed.result.unchanged);
  CHECK(changed.result.version == 2);
  CHECK(progress_calls > 0);
  auto verified = Verify(d / "s/m", d / "b");
  REQUIRE(verified.ok());
  CHECK(verified->problems.empty());

  // A version recorded before fingerprints existed is still found unchanged.
  const std::string v2_record = changed.result.version_dir + "/publish.json";
  record = nlohmann::json::parse(test::ReadFile(v2_record));
  record["source"].erase("fingerprint");
  fs::permissions(v2_record, fs::perms::owner_write, fs::perm_options::add);
  test::WriteFile(v2_record, record.dump(2));
  CHECK(publish().result.unchanged);
}

TEST_CASE("unused patterns are warnings of every publish, an unchanged one included") {
  test::TempDir d;
  test::WriteFile(d / "b/dense/kernel.npy", Npy("<f4", "(2,)", Floats({1, 2})));
  PipelineOptions o;
  o.quantize.patterns = {{QuantDtype::kUint8, {"*/kernal"}}};
  const std::vector<std::string> expected = {"quantize uint8 pattern '*/kernal' matched no weight"};
  auto first = Publish(d / "b", d / "s", o);
  REQUIRE(first.ok());
  CHECK(first->result.warnings == expected);
  auto again = Publish(d / "b", d / "s", o);
  REQUIRE(again.ok());
  CHECK(again->result.unchanged);
  CHECK(again->result.warnings == expected);
  auto report = Inspect(d / "b", o);
  REQUIRE(report.ok());
  CHECK(report->warnings == expected);
}

// A graph model.json whose keys are deliberately not in sorted order.
const char kGraphModel[] =
    "{\"format\": \"graph-model\", \"generatedBy\": \"2.x\",\n"
    " \"signature\": {\"inputs\": {\"zeta:0\": {\"name\": \"zeta:0\"}, "
    "\"alpha:0\": {\"name\": \"alpha:0\"}},\n"
    "               \"outputs\": {\"z_out:0\": {\"name\": \"z_out:0\"}, "
    "\"a_out:0\": {\"name\": \"a_out:0\"}}},\n"
    " \"modelTopology\": {\"node\": [], \"versions\": {\"producer\": 1}, \"library\": {}}\n}\n";

TEST_CASE("model.json is published byte for byte with only weightsManifest filled in") {
  test::TempDir d;
  fs::create_directories(d / "b1");
  fs::create_directories(d / "b2");
  test::WriteFile(d / "b1/w.npy", Npy("<f4", "(2,)", Floats({1, 2})));
  test::WriteFile(d / "b1/model.json", kGraphModel);
  test::WriteFile(d / "b2/w.npy", Npy("<f4", "(2,)", Floats({3, 4})));
  test::WriteFile(d / "b2/model.json", kGraphModel);
  REQUIRE(Publish(d / "b1", d / "s").ok());
  REQUIRE(Publish(d / "b2", d / "s").ok());
  const std::string original = kGraphModel;
  // Inserted right after the last member's value.
  const size_t close = original.find_last_not_of(" \n", original.rfind('}') - 1) + 1;
  auto expect = [&](const std::string& manifest_file) {
    return original.substr(0, close) + ", \"weightsManifest\": " + test::ReadFile(manifest_file) +
           original.substr(close);
  };
  CHECK(test::ReadFile(d / "s/m/2/model.json") == expect(d / "s/m/2/weights_manifest.json"));
  CHECK(test::ReadFile(d / "s/m/model.json") == expect(d / "s/m/weights_manifest.json"));
  auto ok = Verify(d / "s/m", d / "b2");
  REQUIRE(ok.ok());
  CHECK(ok->problems.empty());

  Publisher p(DefaultFileSystem());
  REQUIRE(p.Rollback(d / "s", "m", 1).ok());
  CHECK(test::ReadFile(d / "s/m/model.json") == expect(d / "s/m/weights_manifest.json"));
  CHECK(test::ReadFile(d / "s/m/weights_manifest.json").find("\"1/group1") != std::string::npos);
  auto rolled = Verify(d / "s/m", d / "b1");
  REQUIRE(rolled.ok());
  CHECK(rolled->problems.empty());

  // verify notices a re-sorted model.json.
  fs::permissions(d / "s/m/1/model.json", fs::perms::owner_write, fs::perm_options::add);
  test::WriteFile(d / "s/m/1/model.json",
                  nlohmann::json::parse(test::ReadFile(d / "s/m/1/model.json")).dump());
  auto resorted = Verify(d / "s/m", d / "b1");
  REQUIRE(resorted.ok());
  CHECK(resorted->problems.size() >= 2);
}

TEST_CASE("a model.json nested too deeply is refused before anything is published") {
  test::TempDir d;
  fs::create_directories(d / "b");
  test::WriteFile(d / "b/w.npy", Npy("<f4", "(2,)", Floats({1, 2})));
  test::WriteFile(d / "b/model.json",
                  "{\"x\": " + std::string(2'000'000, '[') + std::string(2'000'000, ']') + "}");
  auto r = Publish(d / "b", d / "s");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().kind() == ErrorKind::kBundle);
  CHECK(r.status().message().find("b/model.json: nested more than 512 levels deep") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(d / "s/m"));
}

}  // namespace
}  // namespace wd
