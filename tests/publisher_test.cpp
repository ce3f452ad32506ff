#include "core/publisher.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <map>
#include <regex>
#include <string>

#include "core/file_system.h"
#include "core/manifest.h"
#include "core/sha256.h"
#include "tests/fault_file_system.h"
#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;
using test::FaultInjectingFileSystem;
using test::FsOp;
using test::TempDir;
using Producer = std::function<Result<StagedContent>(StagingArea&)>;

// What a fake pipeline run writes: shard bytes and an optional topology.
struct FakeBundle {
  std::vector<std::string> shards;
  std::optional<std::string> model_json;
};

FakeBundle Bundle(int k, bool with_model = false) {
  FakeBundle b;
  b.shards = {std::string(8, static_cast<char>('a' + k)),
              std::string(4, static_cast<char>('A' + k))};
  if (with_model) {
    b.model_json = R"({"format": "graph-model", "modelTopology": {"node": [{"name": "x"}], "k": )" +
                   std::to_string(k) + "}}";
  }
  return b;
}

Manifest ManifestFor(const FakeBundle& b) {
  Manifest m(1);
  const std::string n = std::to_string(b.shards.size());
  uint64_t total = 0;
  for (size_t i = 0; i < b.shards.size(); ++i) {
    m[0].paths.push_back("group1-shard" + std::to_string(i + 1) + "of" + n + ".bin");
    total += b.shards[i].size();
  }
  m[0].weights.push_back({"dense/kernel", {total / 4}, "float32", std::nullopt});
  return m;
}

// Writes the shards through `fs` into the staging folder, as the pipeline does.
Producer MakeProducer(FileSystem& fs, const FakeBundle& b, int* calls = nullptr) {
  (void)fs;  // the publisher's: its staging area writes through it
  return [b, calls](StagingArea& area) -> Result<StagedContent> {
    if (calls != nullptr) ++*calls;
    StagedContent c;
    c.manifest = ManifestFor(b);
    c.model_json = b.model_json;
    for (size_t i = 0; i < b.shards.size(); ++i) {
      const std::string& name = c.manifest[0].paths[i];
      const std::string sha = Sha256Hex(b.shards[i]);
      WD_ASSIGN_OR_RETURN(std::unique_ptr<ShardOutput> f, area.NewShard(name));
      WD_RETURN_IF_ERROR(
          f->Append(reinterpret_cast<const uint8_t*>(b.shards[i].data()), b.shards[i].size()));
      WD_RETURN_IF_ERROR(f->Close(sha));
      c.shards.push_back({name, b.shards[i].size(), sha});
    }
    WD_RETURN_IF_ERROR(area.Flush());
    return c;
  };
}

PublishRequest Req(const std::string& serve, const std::string& source_sha, int keep = 3) {
  PublishRequest r;
  r.serve_root = serve;
  r.model = "m";
  r.keep_versions = keep;
  r.source_path = "/drop/m.npz";
  r.source_sha256 = source_sha;
  r.config_digest = "cfg-1";
  return r;
}

int MustPublish(Publisher& p, const PublishRequest& req, const FakeBundle& b) {
  Result<PublishResult> r = p.Publish(req, MakeProducer(DefaultFileSystem(), b));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return r->version;
}

// Every entry under `root`: file bytes, "link:<target>" or "dir".
std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string rel = e.path().lexically_relative(root).string();
    if (e.is_symlink()) {
      out[rel] = "link:" + fs::read_symlink(e.path()).string();
    } else if (e.is_directory()) {
      out[rel] = "dir";
    } else {
      out[rel] = test::ReadFile(e.path().string());
    }
  }
  return out;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

std::string Link(const std::string& path) { return fs::read_symlink(path).string(); }

// The manifest pointer names shards that all exist: a reader can load it.
void CheckPointerLoadable(const std::string& model_dir, const std::string& pointer_text) {
  Result<Manifest> m = ParseManifest(pointer_text, "pointer");
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  for (const ManifestGroup& g : *m) {
    for (const std::string& p : g.paths) CHECK_MESSAGE(fs::exists(model_dir + "/" + p), p);
  }
}

void CheckNoTemporaries(const std::string& model_dir) {
  for (const std::string& n : Names(model_dir))
    CHECK_MESSAGE(n.find(".tmp") == std::string::npos, n);
}

TEST_CASE("publish creates the version folder, both pointers and provenance") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  const FakeBundle b = Bundle(1);
  REQUIRE(MustPublish(p, Req(s, "sha-1"), b) == 1);

  const Manifest m = ManifestFor(b);
  CHECK(test::ReadFile(s + "/m/1/weights_manifest.json") == ManifestToJson(m));
  CHECK(test::ReadFile(s + "/m/weights_manifest.json") == ManifestToJson(WithPathPrefix(m, "1/")));
  CHECK(test::ReadFile(s + "/m/1/group1-shard1of2.bin") == b.shards[0]);
  CHECK(test::ReadFile(s + "/m/1/group1-shard2of2.bin") == b.shards[1]);
  CHECK(Link(s + "/m/current") == "1");
  CHECK_FALSE(fs::exists(s + "/m/model.json"));
  CHECK(Names(s + "/.staging").empty());
  CheckNoTemporaries(s + "/m");

  const auto j = nlohmann::json::parse(test::ReadFile(s + "/m/1/publish.json"));
  CHECK(j["model"] == "m");
  CHECK(j["version"] == 1);
  CHECK(j["source"]["path"] == "/drop/m.npz");
  CHECK(j["source"]["sha256"] == "sha-1");
  CHECK(j["config_digest"] == "cfg-1");
  CHECK(std::regex_match(j["created"].get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK_FALSE(j["weightdrop_version"].get<std::string>().empty());
  REQUIRE(j["shards"].size() == 2);
  CHECK(j["shards"][0]["name"] == "group1-shard1of2.bin");
  CHECK(j["shards"][0]["bytes"] == 8);
  CHECK(j["shards"][0]["sha256"] == Sha256Hex(b.shards[0]));
  CHECK(j["manifest_sha256"] == Sha256Hex(ManifestToJson(m)));

  Result<std::optional<int>> cur = p.CurrentVersion(s, "m");
  REQUIRE(cur.ok());
  CHECK(*cur == std::optional<int>(1));
}

TEST_CASE("second publish is version 2 and moves both pointers") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  MustPublish(p, Req(s, "sha-1"), Bundle(1));
  REQUIRE(MustPublish(p, Req(s, "sha-2"), Bundle(2)) == 2);
  CHECK(Link(s + "/m/current") == "2");
  CHECK(test::ReadFile(s + "/m/weights_manifest.json") ==
        ManifestToJson(WithPathPrefix(ManifestFor(Bundle(2)), "2/")));
  CHECK(test::ReadFile(s + "/m/1/group1-shard1of2.bin") == Bundle(1).shards[0]);
  Result<std::vector<int>> versions = p.ListVersions(s, "m");
  REQUIRE(versions.ok());
  CHECK(*versions == std::vector<int>{1, 2});
}

TEST_CASE("the same source and settings publish nothing and never run the producer") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  MustPublish(p, Req(s, "sha-1"), Bundle(1));
  int calls = 0;
  Result<PublishResult> r =
      p.Publish(Req(s, "sha-1"), MakeProducer(DefaultFileSystem(), Bundle(1), &calls));
  REQUIRE(r.ok());
  CHECK(r->unchanged);
  CHECK(r->version == 1);
  CHECK(r->version_dir == s + "/m/1");
  CHECK(calls == 0);

  PublishRequest other_config = Req(s, "sha-1");
  other_config.config_digest = "cfg-2";
  r = p.Publish(other_config, MakeProducer(DefaultFileSystem(), Bundle(1), &calls));
  REQUIRE(r.ok());
  CHECK_FALSE(r->unchanged);
  CHECK(r->version == 2);

  PublishRequest forced = other_config;
  forced.skip_if_unchanged = false;
  r = p.Publish(forced, MakeProducer(DefaultFileSystem(), Bundle(1), &calls));
  REQUIRE(r.ok());
  CHECK(r->version == 3);
  CHECK(calls == 2);
}

TEST_CASE("retention keeps exactly the newest keep_versions versions") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  std::vector<int> removed;
  for (int k = 1; k <= 4; ++k) {
    Result<PublishResult> r = p.Publish(Req(s, "sha-" + std::to_string(k), 2),
                                        MakeProducer(DefaultFileSystem(), Bundle(k)));
    REQUIRE(r.ok());
    CHECK(r->warnings.empty());
    removed.insert(removed.end(), r->removed.begin(), r->removed.end());
  }
  CHECK(*p.ListVersions(s, "m") == std::vector<int>{3, 4});
  CHECK(removed == std::vector<int>{1, 2});
  CHECK(Names(s + "/.staging").empty());

  // After a rollback to 3, publishing 5 makes 5 current; the newest two stay.
  REQUIRE(p.Rollback(s, "m", 3).ok());
  MustPublish(p, Req(s, "sha-5", 2), Bundle(5));
  CHECK(*p.ListVersions(s, "m") == std::vector<int>{4, 5});
  MustPublish(p, Req(s, "sha-6", 2), Bundle(6));
  CHECK(*p.ListVersions(s, "m") == std::vector<int>{5, 6});
  CHECK(Link(s + "/m/current") == "6");
}

TEST_CASE("rollback moves both pointers to the previous version or the one asked for") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  for (int k = 1; k <= 4; ++k) MustPublish(p, Req(s, "sha-" + std::to_string(k)), Bundle(k));
  CHECK(*p.ListVersions(s, "m") == std::vector<int>{2, 3, 4});

  Result<int> r = p.Rollback(s, "m", std::nullopt);
  REQUIRE(r.ok());
  CHECK(*r == 3);
  CHECK(Link(s + "/m/current") == "3");
  CHECK(test::ReadFile(s + "/m/weights_manifest.json") ==
        ManifestToJson(WithPathPrefix(ManifestFor(Bundle(3)), "3/")));
  REQUIRE(*p.Rollback(s, "m", std::nullopt) == 2);

  r = p.Rollback(s, "m", std::nullopt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == s + "/m: no version older than current 2 (versions: 2, 3, 4)");

  REQUIRE(*p.Rollback(s, "m", 4) == 4);
  CHECK(Link(s + "/m/current") == "4");
  CHECK(test::ReadFile(s + "/m/weights_manifest.json") ==
        ManifestToJson(WithPathPrefix(ManifestFor(Bundle(4)), "4/")));

  r = p.Rollback(s, "m", 1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().kind() == ErrorKind::kConfig);  // a failure (exit 1), not bad usage
  CHECK(r.status().message() == s + "/m: no version 1 (versions: 2, 3, 4)");
  CHECK(Link(s + "/m/current") == "4");
  CheckNoTemporaries(s + "/m");

  CHECK_FALSE(p.Rollback(s, "nosuch", std::nullopt).ok());

  // A version missing a shard is never made current.
  fs::remove(s + "/m/2/group1-shard2of2.bin");
  r = p.Rollback(s, "m", 2);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == s + "/m/2: incomplete, shard 'group1-shard2of2.bin' is missing");
  CHECK(Link(s + "/m/current") == "4");

  // An explicit target repairs a damaged current link.
  fs::remove(s + "/m/current");
  fs::create_symlink("garbage", s + "/m/current");
  CHECK_FALSE(p.Rollback(s, "m", std::nullopt).ok());
  REQUIRE(*p.Rollback(s, "m", 3) == 3);
  CHECK(Link(s + "/m/current") == "3");
}

TEST_CASE("rollback of a version folder says to pass the model and --to, and writes nothing") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  for (int k = 1; k <= 3; ++k) MustPublish(p, Req(s, "sha-" + std::to_string(k)), Bundle(k));
  std::vector<std::string> before = Names(s + "/m/2");
  std::sort(before.begin(), before.end());

  // `weightdrop rollback S/m/2`: serve root S/m, model "2".
  Result<int> r = p.Rollback(s + "/m", "2", std::nullopt);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().kind() == ErrorKind::kUsage);
  CHECK(r.status().message() == s + "/m/2 is a version folder: pass the model folder and the " +
                                    "version, `weightdrop rollback " + s + "/m --to 2`");
  std::vector<std::string> after = Names(s + "/m/2");
  std::sort(after.begin(), after.end());
  CHECK(after == before);  // no .lock inside a version
  CHECK(Link(s + "/m/current") == "3");

  r = p.Rollback(s + "/m", "9", std::nullopt);  // a version that is gone
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == s + "/m/9: no such model folder; " + s +
                                    "/m is a model: pass the model folder and the version, " +
                                    "`weightdrop rollback " + s + "/m --to 9`");

  // A model that is itself named by a number is still a model.
  for (int k : {7, 8}) {
    PublishRequest req = Req(s, "sha-" + std::to_string(k));
    req.model = "7";
    MustPublish(p, req, Bundle(k));
  }
  REQUIRE(*p.Rollback(s, "7", std::nullopt) == 1);
}

TEST_CASE("model.json is published with version-qualified paths at the top level") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  MustPublish(p, Req(s, "sha-1"), Bundle(1, true));
  const auto inner = nlohmann::json::parse(test::ReadFile(s + "/m/1/model.json"));
  const auto top = nlohmann::json::parse(test::ReadFile(s + "/m/model.json"));
  CHECK(inner["format"] == "graph-model");
  CHECK(top["modelTopology"] ==
        nlohmann::json::parse(*Bundle(1, true).model_json).at("modelTopology"));
  CHECK(inner["weightsManifest"] == nlohmann::json::parse(ManifestToJson(ManifestFor(Bundle(1)))));
  CHECK(top["weightsManifest"][0]["paths"][0] == "1/group1-shard1of2.bin");
  CHECK(top["weightsManifest"][0]["weights"][0]["name"] == "dense/kernel");

  // A bundle without a topology retires the top-level model.json...
  MustPublish(p, Req(s, "sha-2"), Bundle(2));
  CHECK_FALSE(fs::exists(s + "/m/model.json"));
  // ...and rolling back to a version with one brings it back.
  REQUIRE(*p.Rollback(s, "m", std::nullopt) == 1);
  const auto back = nlohmann::json::parse(test::ReadFile(s + "/m/model.json"));
  CHECK(back["weightsManifest"][0]["paths"][1] == "1/group1-shard2of2.bin");
  CHECK(back["modelTopology"] == top["modelTopology"]);
}

TEST_CASE("a version number taken by another writer is skipped") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  MustPublish(p, Req(s, "sha-1"), Bundle(1));
  test::WriteFile(s + "/m/5/foreign.bin", "theirs");
  REQUIRE(MustPublish(p, Req(s, "sha-2"), Bundle(2)) == 6);

  // A writer that ignores the lock (another host) takes 7 between our
  // listing and our rename: we land on 8 and record 8 in publish.json.
  FaultInjectingFileSystem ffs(DefaultFileSystem());
  ffs.SetBeforeHook([&](FsOp op, const std::string& path) {
    if (op == FsOp::kRename && path == s + "/m/7" && !fs::exists(path)) {
      test::WriteFile(path + "/foreign.bin", "theirs");
    }
  });
  Publisher racing(ffs);
  Result<PublishResult> r = racing.Publish(Req(s, "sha-3"), MakeProducer(ffs, Bundle(3)));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->version == 8);
  CHECK(nlohmann::json::parse(test::ReadFile(s + "/m/8/publish.json"))["version"] == 8);
  CHECK(test::ReadFile(s + "/m/7/foreign.bin") == "theirs");
  CHECK(Link(s + "/m/current") == "8");
  CHECK(Names(s + "/.staging").empty());
}

TEST_CASE("hostile model names are refused before anything is written") {
  const std::vector<std::string> hostile = {
      "", "../x", ".hidden", "a/b", ".", "..", "a b", "x\n", std::string(201, 'a')};
  for (const std::string& name : hostile) {
    CAPTURE(name);
    CHECK(ValidateModelName(name).kind() == ErrorKind::kUsage);
    CHECK_FALSE(ValidateModelName(name).ok());
    TempDir d;
    Publisher p(DefaultFileSystem());
    PublishRequest req = Req(d / "serve", "sha");
    req.model = name;
    int calls = 0;
    CHECK_FALSE(p.Publish(req, MakeProducer(DefaultFileSystem(), Bundle(1), &calls)).ok());
    CHECK(calls == 0);
    CHECK_FALSE(fs::exists(d / "serve"));
    CHECK_FALSE(fs::exists(d / "x"));
  }
  for (const std::string name : {"m", "resnet-50_v2.1", "A"}) CHECK(ValidateModelName(name).ok());
}

TEST_CASE("a failing producer leaves no staging folder and no version") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  Result<PublishResult> r =
      p.Publish(Req(s, "sha"), [](StagingArea& area) -> Result<StagedContent> {
        WD_ASSIGN_OR_RETURN(std::unique_ptr<ShardOutput> f, area.NewShard("group1-shard1of1.bin"));
        WD_RETURN_IF_ERROR(f->Append(reinterpret_cast<const uint8_t*>("partial"), 7));
        return Status::Bundle("m.npz: member 'w.npy': truncated");
      });
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "m.npz: member 'w.npy': truncated");
  CHECK(Names(s + "/.staging").empty());
  CHECK(p.ListVersions(s, "m")->empty());
  CHECK_FALSE(fs::exists(s + "/m/current"));
}

TEST_CASE("a manifest naming a shard that was not written is refused") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  Result<PublishResult> r = p.Publish(Req(s, "sha"), [](StagingArea&) -> Result<StagedContent> {
    StagedContent c;
    c.manifest = ManifestFor(Bundle(1));
    return c;
  });
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("names shard 'group1-shard1of2.bin' but no such shard") !=
        std::string::npos);
  CHECK(Names(s + "/.staging").empty());
}

TEST_CASE("a failed first publish leaves no model folder; a later one publishes") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  Producer failing = [](StagingArea&) -> Result<StagedContent> {
    return Status::Bundle("/drop/nan.npz: weight 'w' holds NaN");
  };
  REQUIRE_FALSE(p.Publish(Req(s, "sha"), failing).ok());
  CHECK_FALSE(fs::exists(s + "/m"));
  CHECK(Names(s + "/.staging").empty());
  REQUIRE(MustPublish(p, Req(s, "sha-1"), Bundle(1)) == 1);
  // A model that has versions keeps its folder when a publish fails.
  REQUIRE_FALSE(p.Publish(Req(s, "sha-2"), failing).ok());
  CHECK(Link(s + "/m/current") == "1");
}

TEST_CASE("a topology that is not a JSON object is refused before anything is visible") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher p(DefaultFileSystem());
  FakeBundle b = Bundle(1);
  b.model_json = "[1, 2]";
  Result<PublishResult> r = p.Publish(Req(s, "sha"), MakeProducer(DefaultFileSystem(), b));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() == "/drop/m.npz: not a JSON object (expected a tfjs model.json)");
  CHECK(Names(s + "/.staging").empty());
  CHECK(p.ListVersions(s, "m")->empty());
}

// Three published versions (the last with a model.json), then version 4.
struct Scenario {
  TempDir dir;
  std::string serve = dir / "serve";
  std::string model_dir = serve + "/m";

  Scenario() {
    Publisher p(DefaultFileSystem());
    for (int k = 1; k <= 3; ++k)
      MustPublish(p, Req(serve, "sha-" + std::to_string(k)), Bundle(k, k == 3));
  }
  Result<PublishResult> PublishNext(FileSystem& with) {
    Publisher p(with);
    return p.Publish(Req(serve, "sha-4"), MakeProducer(with, Bundle(4, true)));
  }
  std::string NewPointer() const {
    return ManifestToJson(WithPathPrefix(ManifestFor(Bundle(4, true)), "4/"));
  }
  // A freshly started publisher cleans up and publishes version 4 fine.
  void CheckRecovers() {
    Publisher p(DefaultFileSystem());
    REQUIRE(p.RemoveLeftoverStaging(serve).ok());
    CHECK(Names(serve + "/.staging").empty());
    Result<PublishResult> r = PublishNext(DefaultFileSystem());
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    const std::string v = std::to_string(r->version);
    CHECK(Link(model_dir + "/current") == v);
    CHECK(test::ReadFile(model_dir + "/weights_manifest.json") ==
          ManifestToJson(WithPathPrefix(ManifestFor(Bundle(4)), v + "/")));
    CheckPointerLoadable(model_dir, test::ReadFile(model_dir + "/weights_manifest.json"));
    CheckNoTemporaries(model_dir);
  }
};

int CountOps() {
  Scenario sc;
  FaultInjectingFileSystem counter(DefaultFileSystem());
  Result<PublishResult> r = sc.PublishNext(counter);
  REQUIRE(r.ok());
  REQUIRE(r->removed == std::vector<int>{1});
  return counter.Count(FsOp::kAny);
}

TEST_CASE("any single failed operation leaves the published state as it was") {
  const int total = CountOps();
  REQUIRE(total > 20);
  for (int n = 1; n <= total; ++n) {
    Scenario sc;
    const auto before = Snapshot(sc.model_dir);
    FaultInjectingFileSystem ffs(DefaultFileSystem());
    ffs.FailNth(FsOp::kAny, n, n % 2 == 0 ? ENOSPC : EIO);
    Result<PublishResult> r = sc.PublishNext(ffs);
    const auto log = ffs.Log();
    CAPTURE(n);
    CAPTURE(log[static_cast<size_t>(n - 1)]);
    if (r.ok()) {
      // Only retention may fail without failing the publish.
      REQUIRE(r->warnings.size() == 1);
      CHECK(r->warnings[0].rfind("retention", 0) == 0);
      CHECK(Link(sc.model_dir + "/current") == "4");
      continue;
    }
    CHECK(r.status().message().find("injected") != std::string::npos);
    CHECK(r.status().kind() == ErrorKind::kEnvironment);
    const auto after = Snapshot(sc.model_dir);
    for (const auto& [path, bytes] : before) {
      CHECK_MESSAGE(after.count(path) == 1, path);
      if (after.count(path) == 1) CHECK_MESSAGE(after.at(path) == bytes, path);
    }
    for (const auto& [path, bytes] : after) {
      if (before.count(path) != 0) continue;
      CHECK_MESSAGE((path == "4" || path.rfind("4/", 0) == 0), path);  // an unnamed version
    }
    if (fs::exists(sc.model_dir + "/4")) {
      CheckPointerLoadable(sc.model_dir, sc.NewPointer());
      CHECK(fs::exists(sc.model_dir + "/4/publish.json"));
      CHECK(fs::exists(sc.model_dir + "/4/model.json"));
    }
    CheckNoTemporaries(sc.model_dir);
    sc.CheckRecovers();
  }
}

TEST_CASE("a crash after any operation leaves every pointer on a complete version") {
  const int total = CountOps();
  for (int n = 0; n < total; ++n) {
    Scenario sc;
    const auto before = Snapshot(sc.model_dir);
    FaultInjectingFileSystem ffs(DefaultFileSystem());
    ffs.CrashAfter(n);
    Result<PublishResult> r = sc.PublishNext(ffs);
    CAPTURE(n);
    const std::string current = Link(sc.model_dir + "/current");
    const std::string manifest = test::ReadFile(sc.model_dir + "/weights_manifest.json");
    const std::string model = test::ReadFile(sc.model_dir + "/model.json");
    if (r.ok()) {
      // Crashed during retention: the publish itself was complete.
      CHECK(current == "4");
      CHECK_FALSE(r->warnings.empty());
    }
    CHECK((current == "3" || current == "4"));
    CHECK((manifest == before.at("weights_manifest.json") || manifest == sc.NewPointer()));
    CheckPointerLoadable(sc.model_dir, manifest);
    CheckPointerLoadable(sc.model_dir, nlohmann::json::parse(model)["weightsManifest"].dump());
    const auto after = Snapshot(sc.model_dir);
    for (const auto& [path, bytes] : before) {
      const bool pointer =
          path == "current" || path == "weights_manifest.json" || path == "model.json";
      const bool retired = current == "4" && (path == "1" || path.rfind("1/", 0) == 0);
      if (pointer || retired) continue;
      CHECK_MESSAGE(after.count(path) == 1, path);
      if (after.count(path) == 1) CHECK_MESSAGE(after.at(path) == bytes, path);
    }
    sc.CheckRecovers();
  }
}

TEST_CASE("leftover staging is removed unless its model is being published") {
  TempDir d;
  const std::string s = d / "serve";
  test::WriteFile(s + "/.staging/m.123.abc/group1-shard1of1.bin", "x");
  test::WriteFile(s + "/.staging/gone.9.def/a/b", "x");
  test::WriteFile(s + "/busy/1/weights_manifest.json", "[]");
  test::WriteFile(s + "/.staging/busy.77.fed/group1-shard1of1.bin", "x");
  fs::create_directories(s + "/m");
  fs::create_directory_symlink(d.path(), s + "/.staging/m.1.link");

  const int fd = ::open((s + "/busy/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);  // a publish of "busy" in progress
  Publisher p(DefaultFileSystem());
  REQUIRE(p.RemoveLeftoverStaging(s).ok());
  CHECK(Names(s + "/.staging") == std::vector<std::string>{"busy.77.fed"});
  CHECK(fs::exists(d.path()));  // the symlink was removed, not followed
  ::close(fd);
  REQUIRE(p.RemoveLeftoverStaging(s).ok());
  CHECK(Names(s + "/.staging").empty());
  CHECK(p.RemoveLeftoverStaging(d / "never-published").ok());
}

TEST_CASE("current naming anything but a version is reported") {
  TempDir d;
  const std::string s = d / "serve";
  fs::create_directories(s + "/m/1");
  fs::create_directories(s + "/m/07");
  fs::create_directories(s + "/m/x2");
  test::WriteFile(s + "/m/3", "a file, not a version");
  fs::create_directory_symlink("1", s + "/m/4");
  Publisher p(DefaultFileSystem());
  CHECK(*p.ListVersions(s, "m") == std::vector<int>{1});
  CHECK(p.CurrentVersion(s, "m")->has_value() == false);
  fs::create_symlink("../../etc", s + "/m/current");
  Result<std::optional<int>> cur = p.CurrentVersion(s, "m");
  REQUIRE_FALSE(cur.ok());
  CHECK(cur.status().message() == s + "/m/current: names '../../etc', not a version number");
}

// --- The POSIX file system itself. ---

TEST_CASE("atomic write replaces the contents and leaves no temporary") {
  TempDir d;
  FileSystem& real = DefaultFileSystem();
  REQUIRE(real.WriteFileAtomically(d / "a.json", "one").ok());
  REQUIRE(real.WriteFileAtomically(d / "a.json", "two").ok());
  CHECK(test::ReadFile(d / "a.json") == "two");
  CHECK(Names(d.path()) == std::vector<std::string>{"a.json"});

  for (FsOp op : {FsOp::kCreate, FsOp::kWrite, FsOp::kSync, FsOp::kRename}) {
    CAPTURE(test::FsOpName(op));
    FaultInjectingFileSystem ffs(real);
    ffs.FailNth(op, 1, ENOSPC);
    Status st = ffs.WriteFileAtomically(d / "a.json", "three");
    REQUIRE_FALSE(st.ok());
    CHECK(st.message().find("No space left on device") != std::string::npos);
    CHECK(test::ReadFile(d / "a.json") == "two");
    CHECK(Names(d.path()) == std::vector<std::string>{"a.json"});
  }
}

TEST_CASE("new files are created exclusively and never through a symlink") {
  TempDir d;
  FileSystem& real = DefaultFileSystem();
  test::WriteFile(d / "exists", "keep");
  fs::create_symlink(d / "target", d / "link");
  Result<std::unique_ptr<WritableFile>> f = real.NewWritableFile(d / "exists");
  REQUIRE_FALSE(f.ok());
  CHECK(f.status().message() == "create " + (d / "exists") + ": File exists");
  CHECK_FALSE(real.NewWritableFile(d / "link").ok());
  CHECK_FALSE(fs::exists(d / "target"));
  CHECK(test::ReadFile(d / "exists") == "keep");

  f = real.NewWritableFile(d / "new");
  REQUIRE(f.ok());
  REQUIRE((*f)->Append("hello", 5).ok());
  REQUIRE((*f)->WriteAt(8, "XY", 2).ok());
  REQUIRE((*f)->WriteAt(1, "E", 1).ok());
  REQUIRE((*f)->Sync().ok());
  REQUIRE((*f)->Close().ok());
  REQUIRE((*f)->Close().ok());
  CHECK(test::ReadFile(d / "new") == std::string("hEllo\0\0\0XY", 10));
  const fs::perms beyond_0644 = fs::perms::owner_exec | fs::perms::group_write |
                                fs::perms::group_exec | fs::perms::others_write |
                                fs::perms::others_exec;
  CHECK((fs::status(d / "new").permissions() & beyond_0644) == fs::perms::none);
}

TEST_CASE("remove tree deletes a folder without following symlinks out of it") {
  TempDir d;
  FileSystem& real = DefaultFileSystem();
  test::WriteFile(d / "outside/precious", "x");
  test::WriteFile(d / "tree/a/b/c.bin", "x");
  test::WriteFile(d / "tree/top", "x");
  fs::create_directory_symlink(d / "outside", d / "tree/a/escape");
  fs::create_symlink(d / "outside/precious", d / "tree/file-link");
  REQUIRE(real.RemoveTree(d / "tree").ok());
  CHECK_FALSE(fs::exists(d / "tree"));
  CHECK(test::ReadFile(d / "outside/precious") == "x");
  CHECK(real.RemoveTree(d / "tree").ok());  // already gone: fine

  fs::create_directory_symlink(d / "outside", d / "dirlink");
  REQUIRE(real.RemoveTree(d / "dirlink").ok());
  CHECK_FALSE(fs::is_symlink(d / "dirlink"));
  CHECK(fs::exists(d / "outside/precious"));
}

TEST_CASE("reads are bounded and errors name the path") {
  TempDir d;
  FileSystem& real = DefaultFileSystem();
  test::WriteFile(d / "f", std::string(100, 'x'));
  CHECK(real.ReadFile(d / "f", 100)->size() == 100);
  Result<std::string> big = real.ReadFile(d / "f", 99);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().message() == "read " + (d / "f") + ": larger than the limit of 99 bytes");
  Result<std::string> missing = real.ReadFile(d / "nope", 10);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().kind() == ErrorKind::kEnvironment);
  CHECK(missing.status().message() == "open " + (d / "nope") + ": No such file or directory");

  fs::create_symlink(std::string(300, 'y'), d / "long");
  CHECK(*real.ReadLink(d / "long") == std::string(300, 'y'));
  CHECK(real.Exists(d / "long"));
  CHECK_FALSE(real.IsDirectory(d / "long"));
  CHECK(real.IsDirectory(d.path()));
  Result<std::vector<std::string>> names = real.ListDir(d.path());
  REQUIRE(names.ok());
  CHECK(names->size() == 2);
  CHECK_FALSE(real.ListDir(d / "nope").ok());
  CHECK(real.MakeDir(d / "sub").ok());
  CHECK_FALSE(real.MakeDir(d / "sub").ok());
  CHECK(real.Remove(d / "sub").ok());
  CHECK(real.SyncDir(d.path()).ok());
}

}  // namespace
}  // namespace wd

namespace wd {
namespace {

TEST_CASE("republishing after a crash between version rename and pointer swap publishes once") {
  TempDir d;
  const std::string s = d / "serve";
  Publisher good(DefaultFileSystem());
  MustPublish(good, Req(s, "sha-1"), Bundle(1));
  // The pointer swap of the second publish dies: version 2 exists, unnamed.
  FaultInjectingFileSystem ffs(DefaultFileSystem());
  ffs.FailNth(FsOp::kSymlink, 1, EIO);
  Publisher faulty(ffs);
  REQUIRE_FALSE(faulty.Publish(Req(s, "sha-2"), MakeProducer(ffs, Bundle(2))).ok());
  REQUIRE(*good.ListVersions(s, "m") == std::vector<int>{1, 2});
  CHECK(Link(s + "/m/current") == "1");
  // The same bundle again completes version 2 instead of writing version 3.
  int calls = 0;
  auto r = good.Publish(Req(s, "sha-2"), MakeProducer(DefaultFileSystem(), Bundle(2), &calls));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(calls == 0);
  CHECK(r->version == 2);
  CHECK_FALSE(r->unchanged);
  CHECK(Link(s + "/m/current") == "2");
  CHECK(*good.ListVersions(s, "m") == std::vector<int>{1, 2});
  // A different bundle still gets a new version.
  CHECK(good.Publish(Req(s, "sha-3"), MakeProducer(DefaultFileSystem(), Bundle(3)))->version == 3);
}

}  // namespace
}  // namespace wd
