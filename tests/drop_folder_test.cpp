#include "daemon/drop_folder.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/file_system.h"
#include "tests/fault_file_system.h"
#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;
using test::FaultInjectingFileSystem;
using test::FsOp;

TEST_CASE("a failed directory fsync after the claim's rename is a warning, not a lost claim") {
  // The claim fsyncs processing/<id> first, then the drop folder: either may
  // fail, and either way the rename has happened and the bundle is claimed.
  for (int nth : {1, 2}) {
    CAPTURE(nth);
    test::TempDir d;
    const std::string drop = d / "drop";
    REQUIRE(EnsureDropLayout(drop).ok());
    test::WriteFile(drop + "/m.npz", "bundle");
    FaultInjectingFileSystem ffs(DefaultFileSystem());
    ffs.FailNth(FsOp::kSyncDir, nth, EIO);

    const std::string id = NewClaimId();
    Result<Claimed> c = ClaimBundle(drop, "m.npz", id, ffs);
    REQUIRE_MESSAGE(c.ok(), c.status().message());
    const std::string claimed = drop + "/.weightdrop/processing/" + id + "/m.npz";
    CHECK(c->path == claimed);
    CHECK(test::ReadFile(claimed) == "bundle");
    CHECK_FALSE(fs::exists(drop + "/m.npz"));
    CHECK(c->warning.find(claimed) != std::string::npos);
    CHECK(c->warning.find("may not survive a power loss") != std::string::npos);
    CHECK(c->warning.find(std::strerror(EIO)) != std::string::npos);  // the cause
    CHECK(ffs.Count(FsOp::kSyncDir) == nth);
  }
}

TEST_CASE("a durable claim has no warning") {
  test::TempDir d;
  const std::string drop = d / "drop";
  REQUIRE(EnsureDropLayout(drop).ok());
  test::WriteFile(drop + "/m.npz", "bundle");
  FaultInjectingFileSystem ffs(DefaultFileSystem());
  Result<Claimed> c = ClaimBundle(drop, "m.npz", NewClaimId(), ffs);
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  CHECK(c->warning.empty());
  CHECK(ffs.Log() ==
        std::vector<std::string>{"syncdir " + drop + "/.weightdrop/processing/" + c->id,
                                 "syncdir " + drop});
}

}  // namespace
}  // namespace wd
