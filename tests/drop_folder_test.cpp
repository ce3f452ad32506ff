#include "daemon/drop_folder.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
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

// Claims drop/<name> and quarantines it as the daemon does after a failure.
std::string Fail(const std::string& drop, const std::string& name) {
  Result<Claimed> c = ClaimBundle(drop, name, NewClaimId());
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  Result<std::string> to = QuarantineBundle(drop, *c, "bad");
  REQUIRE_MESSAGE(to.ok(), to.status().message());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // ctime ticks are coarse
  return *to;
}

TEST_CASE("failed bundles go back under the name they were dropped with, oldest first") {
  test::TempDir d;
  const std::string drop = d / "drop";
  const std::string failed = drop + "/.weightdrop/failed";
  REQUIRE(EnsureDropLayout(drop).ok());
  test::WriteFile(drop + "/x.npz", "first");
  CHECK(Fail(drop, "x.npz") == failed + "/x.npz");
  test::WriteFile(drop + "/x.npz", "second");
  CHECK(Fail(drop, "x.npz") == failed + "/x.npz.2");  // the collision suffix
  test::WriteFile(drop + "/ckpt.2/w.npy", "folder");  // a folder really named so
  CHECK(Fail(drop, "ckpt.2") == failed + "/ckpt.2");
  test::WriteFile(failed + "/y.npy.3", "by hand");  // no error file: the suffix rule
  test::WriteFile(failed + "/gone.npz.error.txt", "bundle: /d/gone.npz\n");  // bundle removed
  test::WriteFile(failed + "/x.npz.error.txt.tmp-1-abc", "");  // a crash while writing one

  Result<std::vector<FailedBundle>> list = ListFailed(drop);
  REQUIRE_MESSAGE(list.ok(), list.status().message());
  std::vector<std::string> got;
  for (const FailedBundle& f : *list) got.push_back(f.name + " -> " + f.original);
  CHECK(got == std::vector<std::string>{"x.npz -> x.npz", "x.npz.2 -> x.npz", "ckpt.2 -> ckpt.2",
                                        "y.npy.3 -> y.npy"});

  Result<Retried> r = RetryFailed(drop, (*list)[0]);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->path == drop + "/x.npz");
  CHECK(r->warning.empty());
  CHECK(test::ReadFile(drop + "/x.npz") == "first");
  CHECK_FALSE(fs::exists(failed + "/x.npz"));
  CHECK_FALSE(fs::exists(failed + "/x.npz.error.txt"));  // stale once retried

  // The second x.npz waits: what is in the drop folder is never replaced.
  r = RetryFailed(drop, (*list)[1]);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().sys_errno() == EEXIST);
  CHECK(r.status().message().find(drop + "/x.npz already exists") != std::string::npos);
  CHECK(test::ReadFile(drop + "/x.npz") == "first");
  CHECK(test::ReadFile(failed + "/x.npz.2") == "second");
  CHECK(fs::exists(failed + "/x.npz.2.error.txt"));

  r = RetryFailed(drop, (*list)[2]);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(test::ReadFile(drop + "/ckpt.2/w.npy") == "folder");
  r = RetryFailed(drop, (*list)[3]);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(test::ReadFile(drop + "/y.npy") == "by hand");
}

TEST_CASE("a retried bundle whose folder fsync fails is back, with a warning") {
  test::TempDir d;
  const std::string drop = d / "drop";
  REQUIRE(EnsureDropLayout(drop).ok());
  test::WriteFile(drop + "/m.npz", "bundle");
  Fail(drop, "m.npz");
  FaultInjectingFileSystem ffs(DefaultFileSystem());
  ffs.FailNth(FsOp::kSyncDir, 1, EIO);
  Result<Retried> r =
      RetryFailed(drop, {.name = "m.npz", .original = "m.npz", .failed_ns = 0}, ffs);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(test::ReadFile(drop + "/m.npz") == "bundle");
  CHECK(r->warning.find(std::strerror(EIO)) != std::string::npos);
}

TEST_CASE("a drop folder without failed/ has nothing to retry") {
  test::TempDir d;
  Result<std::vector<FailedBundle>> list = ListFailed(d / "never-made");
  REQUIRE_MESSAGE(list.ok(), list.status().message());
  CHECK(list->empty());
}

TEST_CASE("hidden and temporary names are uploads in progress; other non-bundles are not") {
  auto entry = [](std::string name, DropEntry::Kind kind) {
    DropEntry e;
    e.name = std::move(name);
    e.kind = kind;
    return e;
  };
  using K = DropEntry::Kind;
  for (const char* name : {"m.npz.part", ".m.npz", "m.npz.tmp", "m.npy~", ".rsync.abc12"}) {
    CAPTURE(name);
    CHECK(IsUploadInProgress(entry(name, K::kFile)));
    CHECK_FALSE(WhyNotABundle(entry(name, K::kFile)).empty());
  }
  CHECK(IsUploadInProgress(entry(".m", K::kDir)));
  for (const auto& e :
       {entry("notes.txt", K::kFile), entry("UP.NPZ", K::kFile), entry(".hidden-link", K::kSymlink),
        entry("m.npz", K::kSymlink), entry("fifo", K::kOther)}) {
    CAPTURE(e.name);
    CHECK_FALSE(IsUploadInProgress(e));
  }
  CHECK_FALSE(IsUploadInProgress(entry("m.npz", K::kFile)));
}

}  // namespace
}  // namespace wd
