// PublishJob on real folders, without a loop: a claimed bundle is published
// and archived, or quarantined with the reason, or left for a retry, as the
// fault rule says.
#include "daemon/publish_job.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;

const std::string kModel = "m";

struct Folders {
  test::TempDir dir;
  std::string drop = dir / "drop";
  std::string serve = dir / "serve";
  Folders() {
    REQUIRE(EnsureDropLayout(drop).ok());
    fs::create_directories(serve);
  }
  // Drops `bytes` as drop/<name> and claims it.
  Job Claim(const std::string& name, const std::string& bytes) {
    test::WriteFile(drop + "/" + name, bytes);
    auto c = ClaimBundle(drop, name, NewClaimId());
    REQUIRE(c.ok());
    WatchConfig cfg;
    cfg.drop = drop;
    cfg.serve = serve;
    return Job{.cfg = cfg,
               .claimed = *c,
               .model = kModel,
               .pre_error = Status::Ok(),
               .crash_key = "",
               .store = nullptr,
               .attempts = 0,
               .recovered = false,
               .progress = std::make_shared<PublishProgress>()};
  }
};

const CrashHistory kNoCrashes;

std::string GoodNpy() { return test::Npy("<f4", "(2,)", test::Floats({1.5f, -2.0f})); }

TEST_CASE("a good bundle is published and archived in done/") {
  Folders f;
  const Job job = f.Claim("m.npy", GoodNpy());
  const Outcome o = RunPublishJob(job, {}, kNoCrashes, 5);
  CHECK(o.kind == Outcome::kPublished);
  CHECK(o.version == 1);
  CHECK(o.bundle_path == f.drop + "/.weightdrop/done/m.npy");
  CHECK(fs::exists(o.bundle_path));
  CHECK(fs::exists(f.serve + "/m/1/weights_manifest.json"));
  CHECK(job.progress->bytes_total.load() == 8);
  CHECK(job.progress->bytes_done.load() == 8);
  CHECK(fs::is_empty(f.drop + "/.weightdrop/processing"));

  const Outcome again = RunPublishJob(f.Claim("m.npy", GoodNpy()), {}, kNoCrashes, 5);
  CHECK(again.kind == Outcome::kUnchanged);
  CHECK(again.version == 1);
}

TEST_CASE("a bad bundle goes to failed/ with the reason, named as it was dropped") {
  Folders f;
  const Job job = f.Claim("bad.npy", "not a numpy file");
  const Outcome o = RunPublishJob(job, {}, kNoCrashes, 5);
  CHECK(o.kind == Outcome::kFailed);
  CHECK(o.bundle_path == f.drop + "/.weightdrop/failed/bad.npy");
  CHECK(o.error.find(f.drop + "/bad.npy") != std::string::npos);
  CHECK(o.error.find("processing") == std::string::npos);
  const std::string txt = test::ReadFile(f.drop + "/.weightdrop/failed/bad.npy.error.txt");
  CHECK(txt.find(f.drop + "/bad.npy") != std::string::npos);
  CHECK_FALSE(fs::exists(f.serve + "/m"));  // a failed first publish leaves no model folder
}

TEST_CASE("an unreadable bundle is retried bundle_retries times in all, then quarantined") {
  Folders f;
  Job job = f.Claim("m.npy", GoodNpy());
  const Status unreadable = Status::Error(
      ErrorKind::kUnreadable, job.claimed.path + ": cannot open: Permission denied", EACCES);
  for (job.attempts = 0; job.attempts < 4; ++job.attempts) {
    Outcome o;
    SettleBundle(job, unreadable, 5, &o);
    CHECK(o.kind == Outcome::kRetry);
    CHECK(o.unreadable);
    CHECK(o.bundle_path == job.claimed.path);
    CHECK(o.error == f.drop + "/m.npy: cannot open: Permission denied");
    CHECK(fs::exists(job.claimed.path));
  }
  Outcome last;
  SettleBundle(job, unreadable, 5, &last);
  CHECK(last.kind == Outcome::kFailed);
  const std::string txt = test::ReadFile(f.drop + "/.weightdrop/failed/m.npy.error.txt");
  CHECK(txt.find("could not read this bundle in 5 attempts") != std::string::npos);
  CHECK(txt.find("chmod") != std::string::npos);
}

TEST_CASE("a bundle removed from processing/ while it waited is failed once, never retried") {
  for (const ErrorKind kind : {ErrorKind::kUnreadable, ErrorKind::kEnvironment}) {
    Folders f;
    Job job = f.Claim("m.npy", GoodNpy());
    const std::string claim_dir = job.claimed.path.substr(0, job.claimed.path.rfind('/'));
    fs::remove(job.claimed.path);  // an operator cleaned processing/ by hand
    Outcome o;
    SettleBundle(job, Status::Error(kind, job.claimed.path + ": cannot open: No such file", ENOENT),
                 5, &o);
    CHECK(o.kind == Outcome::kFailed);
    CHECK(o.bundle_path.empty());
    CHECK(o.error.find(f.drop + "/m.npy: was removed from .weightdrop/processing/") == 0);
    CHECK_FALSE(fs::exists(claim_dir));
    CHECK(fs::is_empty(f.drop + "/.weightdrop/failed"));  // no orphan error file
  }
}

TEST_CASE("a fault of the machine or the serve side is retried without limit") {
  Folders f;
  Job job = f.Claim("m.npy", GoodNpy());
  job.attempts = 1000;
  Outcome o;
  SettleBundle(job, Status::Environment("serve: No space left on device"), 5, &o);
  CHECK(o.kind == Outcome::kRetry);
  CHECK_FALSE(o.unreadable);
  CHECK(fs::exists(job.claimed.path));
}

TEST_CASE("an exception while publishing is weightdrop's fault, never the bundle's") {
  Folders f;
  const Job job = f.Claim("m.npy", GoodNpy());
  DaemonTestHooks hooks;
  hooks.before_publish = [](const std::string&) { throw std::runtime_error("invariant broken"); };
  const Outcome o = RunPublishJob(job, hooks, kNoCrashes, 5);
  CHECK(o.kind == Outcome::kFailed);
  CHECK(o.error.find("internal error while publishing " + f.drop + "/m.npy") != std::string::npos);
  const std::string txt = test::ReadFile(f.drop + "/.weightdrop/failed/m.npy.error.txt");
  CHECK(txt.find("weightdrop's own fault") != std::string::npos);
}

TEST_CASE(
    "a job carrying an error fails without publishing; on_success delete removes the bundle") {
  Folders f;
  Job bad = f.Claim("x.npy", GoodNpy());
  bad.pre_error = Status::Config("model template '{nope}' is not valid");
  const Outcome o = RunPublishJob(bad, {}, kNoCrashes, 5);
  CHECK(o.kind == Outcome::kFailed);
  CHECK(o.error == "model template '{nope}' is not valid");
  CHECK_FALSE(fs::exists(f.serve + "/m"));

  Job del = f.Claim("m.npy", GoodNpy());
  del.cfg.on_success = OnSuccess::kDelete;
  const Outcome d = RunPublishJob(del, {}, kNoCrashes, 5);
  CHECK(d.kind == Outcome::kPublished);
  CHECK_FALSE(fs::exists(del.claimed.path));
  CHECK_FALSE(fs::exists(f.drop + "/.weightdrop/done/m.npy"));
}

}  // namespace
}  // namespace wd
