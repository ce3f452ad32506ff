// Readiness without a loop or a disk: scans, events and probe results fed
// in by hand, on a clock the test moves.
#include "daemon/readiness.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace wd {
namespace {

struct Fixture {
  int64_t now = 1000000;
  Readiness r{2000, [this] { return now; }};

  static DropEntry File(const std::string& name, uint64_t signature, int64_t ctime_ns = 0) {
    DropEntry e;
    e.name = name;
    e.kind = DropEntry::Kind::kFile;
    e.signature = signature;
    e.ctime_ns = ctime_ns;
    return e;
  }
  Readiness::Scanned Scan(std::vector<DropEntry> entries) {
    return r.ApplyScan(std::move(entries), now);
  }
};

using Names = std::vector<std::string>;

TEST_CASE("a bundle renamed in is claimed at once, without waiting for settle") {
  Fixture f;
  f.r.OnEntryEvent("m.npz", /*moved_in=*/true, /*moved_out=*/false);
  f.Scan({Fixture::File("m.npz", 7)});
  const auto due = f.r.Evaluate();
  CHECK(due.claim == Names{"m.npz"});
  CHECK(due.probe.empty());
  CHECK(f.r.Evaluate().claim.empty());  // busy until its claim ends
  f.r.Forget("m.npz");
  CHECK(f.r.Find("m.npz") == nullptr);
}

TEST_CASE("a file written in place is probed once unchanged for settle, not before") {
  Fixture f;
  f.Scan({Fixture::File("m.npy", 1)});
  auto due = f.r.Evaluate();
  CHECK(due.probe.empty());
  CHECK(due.next_in_ms == 2000);
  f.now += 1500;
  f.Scan({Fixture::File("m.npy", 2)});  // it grew: settle starts again
  due = f.r.Evaluate();
  CHECK(due.probe.empty());
  CHECK(due.next_in_ms == 2000);
  f.now += 2000;
  due = f.r.Evaluate();
  CHECK(due.probe == Names{"m.npy"});
}

TEST_CASE("an incomplete probe waits, and after the grace period the bundle is claimed anyway") {
  Fixture f;
  f.Scan({Fixture::File("m.npz", 1)});
  f.now += 2000;
  REQUIRE(f.r.Evaluate().probe == Names{"m.npz"});
  bool gave_up = true;
  CHECK(f.r.OnProbed("m.npz", Status::Incomplete("no central directory"), &gave_up) ==
        Readiness::AfterProbe::kWait);
  CHECK_FALSE(gave_up);
  CHECK(f.r.Evaluate().probe.empty());  // waits another settle
  f.now += 2000;
  CHECK(f.r.Evaluate().probe == Names{"m.npz"});
  f.now += 30000;  // unchanged for max(30 s, 10 × settle)
  CHECK(f.r.OnProbed("m.npz", Status::Incomplete("no central directory"), &gave_up) ==
        Readiness::AfterProbe::kClaimable);
  CHECK(gave_up);
  CHECK(f.r.Evaluate().claim == Names{"m.npz"});
}

TEST_CASE("a complete probe claims; a probe of a forgotten entry does nothing") {
  Fixture f;
  f.Scan({Fixture::File("m.npy", 1)});
  f.now += 2000;
  REQUIRE(f.r.Evaluate().probe.size() == 1);
  bool gave_up = true;
  CHECK(f.r.OnProbed("m.npy", Status::Ok(), &gave_up) == Readiness::AfterProbe::kClaimable);
  CHECK_FALSE(gave_up);
  CHECK(f.r.Evaluate().claim == Names{"m.npy"});
  CHECK(f.r.OnProbed("gone.npy", Status::Ok(), &gave_up) == Readiness::AfterProbe::kGone);
}

TEST_CASE("a .ready marker inside a folder bundle makes it claimable at once") {
  Fixture f;
  DropEntry dir = Fixture::File("bundle", 3);
  dir.kind = DropEntry::Kind::kDir;
  f.Scan({dir});
  CHECK(f.r.Evaluate().claim.empty());
  f.r.OnInsideEvent("bundle", /*ready_marker=*/true);
  CHECK(f.r.Evaluate().claim == Names{"bundle"});
}

TEST_CASE("bundles are taken in arrival order, by the ctime of the first scan") {
  Fixture f;
  f.Scan({Fixture::File("b.npy", 1, 300), Fixture::File("c.npy", 1, 100),
          Fixture::File("a.npy", 1, 200)});
  f.now += 2000;
  CHECK(f.r.Evaluate().probe == Names{"c.npy", "a.npy", "b.npy"});
}

TEST_CASE("files that are not bundles are warned about once and listed as ignored") {
  Fixture f;
  auto s = f.Scan(
      {Fixture::File("notes.txt", 1), Fixture::File("UP.NPZ", 1), Fixture::File("m.npy", 1)});
  REQUIRE(s.first_ignored.size() == 2);
  CHECK(s.first_ignored[0].first.name == "notes.txt");
  CHECK_FALSE(s.first_ignored[0].second.empty());
  CHECK(s.ignored_changed);
  CHECK(f.r.ignored() == Names{"notes.txt", "UP.NPZ"});
  f.now += 10;
  s = f.Scan({Fixture::File("notes.txt", 1), Fixture::File("UP.NPZ", 1)});
  CHECK(s.first_ignored.empty());
  CHECK_FALSE(s.ignored_changed);
  CHECK(s.gone == Names{"m.npy"});
}

TEST_CASE("an entry renamed in while a scan ran is not forgotten by that scan") {
  Fixture f;
  const int64_t scan_started = f.now;
  f.now += 5;
  f.r.OnEntryEvent("late.npz", /*moved_in=*/true, /*moved_out=*/false);
  const auto s = f.r.ApplyScan({}, scan_started);  // listed before it arrived
  CHECK(s.gone.empty());
  REQUIRE(f.r.Find("late.npz") != nullptr);
  CHECK(f.r.Find("late.npz")->arrived_whole);
  // The next scan sees it, and it is still taken at once.
  f.Scan({Fixture::File("late.npz", 9)});
  CHECK(f.r.Evaluate().claim == Names{"late.npz"});
}

TEST_CASE("an entry moved out loses its rename-in shortcut") {
  Fixture f;
  f.r.OnEntryEvent("m.npz", true, false);
  f.r.OnEntryEvent("m.npz", false, true);
  f.Scan({Fixture::File("m.npz", 1)});
  CHECK(f.r.Evaluate().claim.empty());
}

TEST_CASE("a bundle found at start is claimed before one renamed in after it") {
  Fixture f;
  f.Scan({Fixture::File("a.npz", 1)});  // the first scan: arrived while the daemon was down
  f.now += 500;
  f.r.OnEntryEvent("b.npz", /*moved_in=*/true, /*moved_out=*/false);
  f.Scan({Fixture::File("a.npz", 1), Fixture::File("b.npz", 2)});
  auto due = f.r.Evaluate();
  CHECK(due.claim.empty());  // b waits for a, at most settle and a probe
  CHECK(due.next_in_ms == 1500);
  f.now += 1500;
  due = f.r.Evaluate();
  CHECK(due.probe == Names{"a.npz"});
  CHECK(due.claim.empty());  // still waiting: a's probe runs
  bool gave_up = false;
  REQUIRE(f.r.OnProbed("a.npz", Status::Ok(), &gave_up) == Readiness::AfterProbe::kClaimable);
  CHECK(f.r.Evaluate().claim == Names{"a.npz", "b.npz"});
}

TEST_CASE("bundles probed together are claimed in arrival order, whatever order probes end") {
  Fixture f;
  f.Scan({Fixture::File("big.npz", 1, 100), Fixture::File("small.npz", 1, 200)});
  f.now += 2000;
  REQUIRE(f.r.Evaluate().probe == Names{"big.npz", "small.npz"});
  bool gave_up = false;
  REQUIRE(f.r.OnProbed("small.npz", Status::Ok(), &gave_up) == Readiness::AfterProbe::kClaimable);
  CHECK(f.r.Evaluate().claim.empty());  // big.npz came first and is still being opened
  REQUIRE(f.r.OnProbed("big.npz", Status::Ok(), &gave_up) == Readiness::AfterProbe::kClaimable);
  CHECK(f.r.Evaluate().claim == Names{"big.npz", "small.npz"});
}

TEST_CASE("a bundle still being written holds nothing back") {
  Fixture f;
  f.Scan({Fixture::File("slow.npz", 1, 100)});
  f.now += 100;
  f.Scan({Fixture::File("slow.npz", 2, 100)});  // it grows
  f.r.OnEntryEvent("fast.npz", /*moved_in=*/true, /*moved_out=*/false);
  f.Scan({Fixture::File("slow.npz", 2, 100), Fixture::File("fast.npz", 1, 300)});
  CHECK(f.r.Evaluate().claim == Names{"fast.npz"});
}

TEST_CASE("an earlier bundle found incomplete by its probe holds nothing back") {
  Fixture f;
  f.Scan({Fixture::File("half.npz", 1, 100)});
  f.now += 2000;
  REQUIRE(f.r.Evaluate().probe == Names{"half.npz"});
  bool gave_up = false;
  REQUIRE(f.r.OnProbed("half.npz", Status::Incomplete("no central directory"), &gave_up) ==
          Readiness::AfterProbe::kWait);
  f.r.OnEntryEvent("next.npz", /*moved_in=*/true, /*moved_out=*/false);
  f.Scan({Fixture::File("half.npz", 1, 100), Fixture::File("next.npz", 1, 300)});
  CHECK(f.r.Evaluate().claim == Names{"next.npz"});
}

}  // namespace
}  // namespace wd
