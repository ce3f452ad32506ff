// ModelQueues: the claimed bundles waiting per model (serve root + model
// name): which publishes next, how many publish at once, and how long a
// model waits after a fault. A model's bundles publish one at a time in
// arrival order; a fault of the serve side blocks its model with a growing
// backoff (every bundle would fail), a bundle that cannot be read is retried
// from `bundle_retry_delay` a bounded number of times (the count is
// PublishJob's; docs/configuration.md, `bundle_retries`). No loop and no clock: the
// caller passes the time, so a test drives it directly.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "daemon/publish_job.h"

namespace wd {

// The longest a model waits between two attempts.
constexpr int64_t kMaxBackoffMs = 5 * 60 * 1000;
// The first wait after a fault of the machine or the serve side.
constexpr int64_t kFirstBackoffMs = 1000;

// "<serve>/<model>": bundles with the same key publish one at a time.
std::string QueueKey(const Job& job);

class ModelQueues {
 public:
  struct Queue {
    std::deque<Job> jobs;  // the front one runs when `running`
    bool running = false;
    int64_t retry_at_ms = 0;  // the front job waits until then after a fault
  };

  // After a job ended: the job, and when it is retried.
  struct Finished {
    Job job;  // popped, unless retried (then a copy)
    bool retry = false;
    int64_t backoff_ms = 0;  // when retried
  };

  // Recovered bundles first, then claim order. Returns the drop folders
  // feeding the job's model when this job's folder made it more than one
  // (two watches whose model templates meet): legal, but each replaces the
  // other's versions, so the caller warns once.
  std::vector<std::string> Enqueue(Job job);

  // A claim dispatched to a worker and not back yet: no queue starts a job
  // claimed after it, so a model's bundles publish in arrival order.
  void ClaimStarted(const std::string& id) { pending_claims_.insert(id); }
  void ClaimFinished(const std::string& id) { pending_claims_.erase(id); }

  // Marks running, and returns, the queues whose front job may start now:
  // not waiting out a backoff, not behind a pending claim, and at most
  // `max_parallel` running in all; earliest claim first.
  std::vector<std::string> TakeStartable(int64_t now_ms, int max_parallel);

  // REQUIRES: `key` is running. Ends its front job with `o`.
  Finished Finish(const std::string& key, const Outcome& o, int64_t now_ms,
                  int64_t bundle_retry_delay_ms);

  // Every queue waiting out a backoff may start at once (after a reload).
  void RetryWaitingNow() {
    for (auto& [key, q] : queues_) q.retry_at_ms = 0;
  }
  // The earliest time a waiting queue may start again, if any waits.
  std::optional<int64_t> NextRetryAt(int64_t now_ms) const;

  size_t running() const;
  const std::map<std::string, Queue>& queues() const { return queues_; }
  // Models fed by more than one drop folder, by key.
  const std::map<std::string, std::vector<std::string>>& shared() const { return shared_; }

 private:
  std::map<std::string, Queue> queues_;
  std::set<std::string> pending_claims_;
  std::map<std::string, std::vector<std::string>> fed_by_;  // key -> drop folders
  std::map<std::string, std::vector<std::string>> shared_;
};

}  // namespace wd
