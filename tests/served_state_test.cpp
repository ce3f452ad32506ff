#include "daemon/served_state.h"

#include <doctest/doctest.h>

#include <filesystem>

#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;

TEST_CASE("a restart starts from the served tree and the last run's counters") {
  test::TempDir d;
  const std::string serve = d / "serve";
  fs::create_directories(serve + "/a/1");
  fs::create_directories(serve + "/a/2");
  fs::create_symlink("2", serve + "/a/current");
  test::WriteFile(serve + "/a/2/publish.json",
                  R"({"model": "a", "version": 2, "created": "2026-11-28T18:00:00Z"})");
  fs::create_directories(serve + "/b/1");  // no current: not served
  fs::create_directories(serve + "/.staging/x");
  fs::create_directories(serve + "/c/3");
  fs::create_symlink("3", serve + "/c/current");  // no publish.json: version only

  DaemonStatus before;
  before.models[serve + "/a"] = {.model = "a",
                                 .serve = serve,
                                 .current_version = 1,
                                 .last_result = "published",
                                 .last_error = "",
                                 .last_bundle = "a.npz",
                                 .last_success_unix = 100,
                                 .publishes = 7,
                                 .failures = 2,
                                 .unchanged = 1,
                                 .bytes = 99};
  before.models["/elsewhere/z"] = {.model = "z",
                                   .serve = "/elsewhere",
                                   .current_version = 4,
                                   .last_result = "",
                                   .last_error = "",
                                   .last_bundle = "",
                                   .last_success_unix = std::nullopt,
                                   .publishes = 1,
                                   .failures = 0,
                                   .unchanged = 0,
                                   .bytes = 1};
  test::WriteFile(d / "status.json", StatusToJson(before));

  DaemonConfig cfg;
  WatchConfig w;
  w.drop = d / "drop";
  w.serve = serve;
  cfg.watches.push_back(w);
  auto models = RestoreModelStatus(cfg, d / "status.json");
  REQUIRE(models.size() == 2);
  const ModelStatus& a = models.at(serve + "/a");
  CHECK(a.current_version == 2);
  CHECK(a.publishes == 7);
  CHECK(a.failures == 2);
  CHECK(a.bytes == 99);
  REQUIRE(a.last_success_unix.has_value());
  CHECK(*a.last_success_unix == 1795888800);  // 2026-11-28T18:00:00Z
  const ModelStatus& c = models.at(serve + "/c");
  CHECK(c.current_version == 3);
  CHECK(c.publishes == 0);
  CHECK_FALSE(c.last_success_unix.has_value());

  // No status.json at all: the tree alone.
  auto fresh = RestoreModelStatus(cfg, d / "missing.json");
  CHECK(fresh.size() == 2);
  CHECK(fresh.at(serve + "/a").publishes == 0);
  CHECK(fresh.at(serve + "/a").current_version == 2);
}

TEST_CASE("ServedVersion reads current only when it names a version folder") {
  test::TempDir d;
  const std::string serve = d / "serve";
  fs::create_directories(serve + "/a/2");
  fs::create_symlink("2", serve + "/a/current");
  CHECK(ServedVersion(serve, "a") == 2);
  fs::create_directories(serve + "/b");
  CHECK_FALSE(ServedVersion(serve, "b"));  // no current
  fs::create_symlink("7", serve + "/b/current");
  CHECK_FALSE(ServedVersion(serve, "b"));  // names no folder
  fs::create_directories(serve + "/c/x1");
  fs::create_symlink("x1", serve + "/c/current");
  CHECK_FALSE(ServedVersion(serve, "c"));  // not a number
  fs::create_directories(serve + "/e/99999999999");
  fs::create_symlink("99999999999", serve + "/e/current");
  CHECK_FALSE(ServedVersion(serve, "e"));  // would overflow int
  CHECK_FALSE(ServedVersion(serve, "missing"));
}

}  // namespace
}  // namespace wd
