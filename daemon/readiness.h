// Readiness: when an entry of a drop folder is a bundle complete enough to
// claim (docs/configuration.md, `settle`): at once when it was
// renamed in or holds a `.ready` marker, else once nothing in it changed for
// `settle` and a probe opened it whole. One per watch. No loop and no I/O:
// the caller feeds it scans, events and probe results, does the claims and
// probes it returns, and injects the clock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "daemon/drop_folder.h"

namespace wd {

struct Candidate {
  uint64_t seq = 0;  // order of first sight: bundles are claimed in arrival order
  uint64_t signature = 0;
  int64_t last_change_ms = 0;
  bool arrived_whole = false;  // moved in by rename: complete at once
  bool ready_marker = false;
  bool busy = false;       // a probe or claim is under way
  bool probing = false;    // ... and it is a probe
  bool probed_ok = false;  // opened whole: claimable, in its turn
  int64_t first_seen_ms = 0;
  int64_t incomplete_since_ms = 0;
  std::set<std::string> subdirs;  // the caller's: folders inside it being watched
};

class Readiness {
 public:
  using Clock = std::function<int64_t()>;  // milliseconds, monotonic

  Readiness(int64_t settle_ms, Clock now) : settle_ms_(settle_ms), now_(std::move(now)) {}

  void set_settle(int64_t settle_ms) { settle_ms_ = settle_ms; }

  // An event on `name` in the drop folder itself: moved in, moved out or
  // deleted, or anything else.
  void OnEntryEvent(const std::string& name, bool moved_in, bool moved_out);
  // An event inside entry `name` (a folder bundle); `ready_marker` when it
  // is `.ready` appearing at the entry's top level.
  void OnInsideEvent(const std::string& name, bool ready_marker);

  struct Scanned {
    // Not bundles, seen for the first time: the entry and why (logged once).
    std::vector<std::pair<DropEntry, std::string>> first_ignored;
    bool ignored_changed = false;
    std::vector<std::string> gone;  // forgotten: the caller stops watching them
  };
  // A listing of the folder taken by a scan that started at
  // `scan_started_ms`. An entry it misses is forgotten, unless an event
  // touched it after the scan started (renamed in meanwhile).
  Scanned ApplyScan(std::vector<DropEntry> entries, int64_t scan_started_ms);

  // Claims go out in arrival order: a claimable entry waits while an
  // earlier one is being probed, or is waiting out `settle` unchanged since
  // it was first seen (a bundle found at start, or written in place and
  // complete) — at most `settle` and a probe. An earlier entry that is still
  // being written holds nothing back.
  struct Due {
    std::vector<std::string> claim;  // in arrival order; now busy
    std::vector<std::string> probe;  // in arrival order; now busy
    int64_t next_in_ms = -1;         // evaluate again after this long (-1: no need)
  };
  Due Evaluate();

  enum class AfterProbe { kClaimable, kWait, kGone };
  // `opened`: what opening the bundle gave. Complete: claimable, by the next
  // Evaluate in its turn. kIncomplete waits `settle` again until the bundle
  // has been unchanged for max(30 s, 10 × settle); then it is claimable all
  // the same, and its publish says what is wrong (`*gave_up` is set).
  AfterProbe OnProbed(const std::string& name, const Status& opened, bool* gave_up);

  // The claim of `name` ended (whatever its result): forget it.
  void Forget(const std::string& name) { entries_.erase(name); }

  Candidate* Find(const std::string& name);
  const std::vector<std::string>& ignored() const { return ignored_; }
  int64_t settle_ms() const { return settle_ms_; }
  int64_t now() const { return now_(); }

 private:
  Candidate& Entry(const std::string& name);

  int64_t settle_ms_;
  Clock now_;
  std::map<std::string, Candidate> entries_;
  uint64_t next_seq_ = 1;
  std::set<std::string> warned_;      // names already warned about
  std::vector<std::string> ignored_;  // not bundles, as of the last scan
};

}  // namespace wd
