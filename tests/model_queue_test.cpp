// ModelQueues without a loop: order, the parallel bound, claims in flight,
// and the backoff of the bundle-vs-serve fault rule, with the time passed in.
#include "daemon/model_queue.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace wd {
namespace {

Job MakeJob(const std::string& model, const std::string& claim_id, bool recovered = false,
            const std::string& drop = "/d") {
  Job j;
  j.cfg.drop = drop;
  j.cfg.serve = "/s";
  j.model = model;
  j.claimed = Claimed{.id = claim_id, .name = model + ".npy", .path = "", .warning = ""};
  j.recovered = recovered;
  return j;
}

Outcome Result(Outcome::Kind kind, bool unreadable = false) {
  Outcome o;
  o.kind = kind;
  o.unreadable = unreadable;
  return o;
}

TEST_CASE("a model's bundles publish one at a time, recovered first, then in claim order") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0003"));
  q.Enqueue(MakeJob("m", "0001"));
  q.Enqueue(MakeJob("m", "0009", /*recovered=*/true));
  CHECK(q.TakeStartable(0, 4) == std::vector<std::string>{"/s/m"});
  CHECK(q.TakeStartable(0, 4).empty());  // one at a time per model
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    order.push_back(q.queues().at("/s/m").jobs.front().claimed.id);
    const auto f = q.Finish("/s/m", Result(Outcome::kPublished), 0, 10000);
    CHECK_FALSE(f.retry);
    CHECK(f.job.claimed.id == order.back());
    q.TakeStartable(0, 4);
  }
  CHECK(order == std::vector<std::string>{"0009", "0001", "0003"});
  CHECK(q.queues().empty());
}

TEST_CASE("a job enqueued while its model runs never jumps ahead of the running one") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0005"));
  REQUIRE(q.TakeStartable(0, 1).size() == 1);
  q.Enqueue(MakeJob("m", "0002", /*recovered=*/true));
  CHECK(q.queues().at("/s/m").jobs.front().claimed.id == "0005");
  CHECK(q.Finish("/s/m", Result(Outcome::kPublished), 0, 0).job.claimed.id == "0005");
}

TEST_CASE("max_parallel bounds publishes across models; a free slot goes to the earliest claim") {
  ModelQueues q;
  q.Enqueue(MakeJob("c", "0003"));
  q.Enqueue(MakeJob("a", "0001"));
  q.Enqueue(MakeJob("b", "0002"));
  CHECK(q.TakeStartable(0, 2) == std::vector<std::string>{"/s/a", "/s/b"});
  CHECK(q.running() == 2);
  CHECK(q.TakeStartable(0, 2).empty());
  q.Finish("/s/b", Result(Outcome::kFailed), 0, 0);
  CHECK(q.TakeStartable(0, 2) == std::vector<std::string>{"/s/c"});
}

TEST_CASE("no job starts ahead of an earlier claim still on its way") {
  ModelQueues q;
  q.ClaimStarted("0001");
  q.Enqueue(MakeJob("m", "0002"));
  q.Enqueue(MakeJob("r", "0007", /*recovered=*/true));  // recovered: not held back
  CHECK(q.TakeStartable(0, 4) == std::vector<std::string>{"/s/r"});
  q.ClaimFinished("0001");
  CHECK(q.TakeStartable(0, 4) == std::vector<std::string>{"/s/m"});
}

TEST_CASE("a serve-side fault blocks its model with a doubling backoff; other models go on") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0001"));
  q.Enqueue(MakeJob("m", "0002"));
  q.Enqueue(MakeJob("n", "0003"));
  CHECK(q.TakeStartable(0, 1) == std::vector<std::string>{"/s/m"});
  const int64_t expected[] = {1000, 2000, 4000, 8000};
  int64_t now = 0;
  for (int64_t want : expected) {
    const auto f = q.Finish("/s/m", Result(Outcome::kRetry), now, 10000);
    CHECK(f.retry);
    CHECK(f.backoff_ms == want);
    CHECK(q.NextRetryAt(now) == now + want);
    // While /s/m waits, /s/n may take the slot; /s/m's next bundle may not.
    const auto started = q.TakeStartable(now + want - 1, 1);
    if (!started.empty()) {
      CHECK(started == std::vector<std::string>{"/s/n"});
      q.Finish("/s/n", Result(Outcome::kPublished), now, 10000);
    }
    now += want;
    CHECK(q.TakeStartable(now, 1) == std::vector<std::string>{"/s/m"});
  }
  CHECK(q.queues().at("/s/m").jobs.front().attempts == 4);
  CHECK(q.queues().at("/s/m").jobs.size() == 2);  // the same bundle stays at the front
}

TEST_CASE("the backoff is capped at five minutes") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0001"));
  int64_t last = 0;
  for (int i = 0; i < 40; ++i) {
    REQUIRE(q.TakeStartable(1LL << 40, 1).size() == 1);
    last = q.Finish("/s/m", Result(Outcome::kRetry), 0, 10000).backoff_ms;
  }
  CHECK(last == kMaxBackoffMs);
}

TEST_CASE("after a reload a model waiting out a backoff starts at once") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0001"));
  REQUIRE(q.TakeStartable(0, 1).size() == 1);
  const auto f = q.Finish("/s/m", Result(Outcome::kRetry), 1000, 10000);
  REQUIRE(f.retry);
  CHECK(q.TakeStartable(1000, 1).empty());  // waiting
  q.RetryWaitingNow();
  CHECK_FALSE(q.NextRetryAt(1000).has_value());
  CHECK(q.TakeStartable(1000, 1) == std::vector<std::string>{"/s/m"});
}

TEST_CASE("an unreadable bundle waits from bundle_retry_delay, doubling") {
  ModelQueues q;
  q.Enqueue(MakeJob("m", "0001"));
  std::vector<int64_t> waits;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(q.TakeStartable(1LL << 40, 1).size() == 1);
    waits.push_back(
        q.Finish("/s/m", Result(Outcome::kRetry, /*unreadable=*/true), 0, 10000).backoff_ms);
  }
  CHECK(waits == std::vector<int64_t>{10000, 20000, 40000});
  // Quarantined at last (PublishJob's verdict): the model moves on at once.
  REQUIRE(q.TakeStartable(1LL << 40, 1).size() == 1);
  const auto f = q.Finish("/s/m", Result(Outcome::kFailed), 0, 10000);
  CHECK_FALSE(f.retry);
  CHECK(f.job.attempts == 3);
  CHECK(q.queues().empty());
}

TEST_CASE("a model fed by two drop folders is reported once, with both folders") {
  ModelQueues q;
  CHECK(q.Enqueue(MakeJob("m", "0001", false, "/d1")).empty());
  CHECK(q.Enqueue(MakeJob("m", "0002", false, "/d1")).empty());
  CHECK(q.Enqueue(MakeJob("m", "0003", false, "/d2")) == std::vector<std::string>{"/d1", "/d2"});
  CHECK(q.Enqueue(MakeJob("m", "0004", false, "/d2")).empty());
  CHECK(q.shared().at("/s/m") == std::vector<std::string>{"/d1", "/d2"});
}

}  // namespace
}  // namespace wd
