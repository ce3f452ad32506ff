#include "daemon/readiness.h"

#include <algorithm>

namespace wd {

Candidate& Readiness::Entry(const std::string& name) {
  Candidate& c = entries_[name];
  if (c.seq == 0) {
    c.seq = next_seq_++;
    c.first_seen_ms = now_();
  }
  return c;
}

Candidate* Readiness::Find(const std::string& name) {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

void Readiness::OnEntryEvent(const std::string& name, bool moved_in, bool moved_out) {
  Candidate& c = Entry(name);
  c.last_change_ms = now_();
  if (moved_in) c.arrived_whole = true;
  if (moved_out) c.arrived_whole = false;
}

void Readiness::OnInsideEvent(const std::string& name, bool ready_marker) {
  Candidate* c = Find(name);
  if (c == nullptr) return;
  c->last_change_ms = now_();
  if (ready_marker) c->ready_marker = true;
}

Readiness::Scanned Readiness::ApplyScan(std::vector<DropEntry> entries, int64_t scan_started_ms) {
  Scanned out;
  const int64_t now = now_();
  // Entries first seen by this scan are numbered in the order they arrived.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const DropEntry& a, const DropEntry& b) { return a.ctime_ns < b.ctime_ns; });
  const std::vector<std::string> ignored_before = std::move(ignored_);
  ignored_.clear();
  std::set<std::string> seen;
  for (const DropEntry& e : entries) {
    if (!IsBundleCandidate(e)) {
      if (warned_.insert(e.name).second) out.first_ignored.emplace_back(e, WhyNotABundle(e));
      ignored_.push_back(e.name);
      if (entries_.count(e.name) != 0 && !entries_[e.name].busy) {
        entries_.erase(e.name);
        out.gone.push_back(e.name);
      }
      continue;
    }
    seen.insert(e.name);
    Candidate& c = Entry(e.name);
    if (c.signature != e.signature) {
      if (c.signature != 0) {  // changed since the last scan
        c.incomplete_since_ms = 0;
        c.last_change_ms = now;
      } else if (c.last_change_ms == 0) {  // first seen now
        c.last_change_ms = now;
      }
      c.signature = e.signature;
    }
    if (e.ready_marker) c.ready_marker = true;
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (seen.count(it->first) == 0 && !it->second.busy &&
        it->second.last_change_ms < scan_started_ms) {
      out.gone.push_back(it->first);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  out.ignored_changed = ignored_ != ignored_before;
  return out;
}

Readiness::Due Readiness::Evaluate() {
  Due due;
  const int64_t now = now_();
  std::vector<std::pair<uint64_t, std::string>> by_arrival;
  for (const auto& [name, c] : entries_) by_arrival.emplace_back(c.seq, name);
  std::sort(by_arrival.begin(), by_arrival.end());
  bool held = false;  // an earlier entry is about to be claimable
  for (const auto& [seq, name] : by_arrival) {
    Candidate& c = entries_[name];
    if (c.busy) {
      held = held || c.probing;
      continue;
    }
    if (c.signature == 0) continue;
    if (c.arrived_whole || c.ready_marker || c.probed_ok) {
      if (!held) {
        due.claim.push_back(name);
        c.busy = true;
      }
      continue;
    }
    const int64_t settled_at = c.last_change_ms + settle_ms_;
    const int64_t retry_at = c.incomplete_since_ms == 0 ? 0 : c.incomplete_since_ms + settle_ms_;
    const int64_t at = std::max(settled_at, retry_at);
    if (now >= at) {
      due.probe.push_back(name);
      c.busy = c.probing = true;
      held = true;
      continue;
    }
    if (due.next_in_ms < 0 || at - now < due.next_in_ms) due.next_in_ms = at - now;
    // Unchanged since first seen and not found incomplete: it is a whole
    // bundle waiting out settle, and it came first.
    if (c.last_change_ms <= c.first_seen_ms && c.incomplete_since_ms == 0) held = true;
  }
  return due;
}

Readiness::AfterProbe Readiness::OnProbed(const std::string& name, const Status& opened,
                                          bool* gave_up) {
  *gave_up = false;
  Candidate* c = Find(name);
  if (c == nullptr) return AfterProbe::kGone;
  c->busy = c->probing = false;
  if (!opened.ok() && opened.kind() == ErrorKind::kIncomplete) {
    const int64_t now = now_();
    if (c->incomplete_since_ms == 0) c->incomplete_since_ms = now;
    const int64_t grace = std::max<int64_t>(30000, 10 * settle_ms_);
    if (now - c->last_change_ms < grace) return AfterProbe::kWait;
    *gave_up = true;
  }
  c->probed_ok = true;
  return AfterProbe::kClaimable;
}

}  // namespace wd
