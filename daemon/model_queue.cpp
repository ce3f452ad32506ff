#include "daemon/model_queue.h"

#include <algorithm>

namespace wd {

std::string QueueKey(const Job& job) {
  return job.cfg.serve + "/" + (job.model.empty() ? "(invalid model)" : job.model);
}

std::vector<std::string> ModelQueues::Enqueue(Job job) {
  const std::string key = QueueKey(job);
  std::vector<std::string> newly_shared;
  if (!job.model.empty()) {
    std::vector<std::string>& drops = fed_by_[key];
    if (std::find(drops.begin(), drops.end(), job.cfg.drop) == drops.end()) {
      drops.push_back(job.cfg.drop);
      if (drops.size() > 1) {
        shared_[key] = drops;
        newly_shared = drops;
      }
    }
  }
  Queue& q = queues_[key];
  auto before = [](const Job& a, const Job& b) {
    if (a.recovered != b.recovered) return a.recovered;
    return a.claimed.id < b.claimed.id;
  };
  auto pos = q.jobs.begin() + (q.running ? 1 : 0);
  while (pos != q.jobs.end() && !before(job, *pos)) ++pos;
  q.jobs.insert(pos, std::move(job));
  return newly_shared;
}

std::vector<std::string> ModelQueues::TakeStartable(int64_t now_ms, int max_parallel) {
  std::vector<std::pair<std::string, std::string>> waiting;  // (front claim id, key)
  for (const auto& [key, q] : queues_) {
    if (q.running || q.jobs.empty() || q.retry_at_ms > now_ms) continue;
    const Job& next = q.jobs.front();
    if (!next.recovered && !pending_claims_.empty() && *pending_claims_.begin() < next.claimed.id) {
      continue;  // an earlier claim is still on its way
    }
    waiting.emplace_back(next.claimed.id, key);
  }
  std::sort(waiting.begin(), waiting.end());
  std::vector<std::string> out;
  size_t n = running();
  for (const auto& [id, key] : waiting) {
    if (n >= static_cast<size_t>(std::max(max_parallel, 1))) break;
    queues_[key].running = true;
    out.push_back(key);
    ++n;
  }
  return out;
}

ModelQueues::Finished ModelQueues::Finish(const std::string& key, const Outcome& o, int64_t now_ms,
                                          int64_t bundle_retry_delay_ms) {
  Queue& q = queues_.at(key);
  q.running = false;
  Finished f;
  if (o.kind == Outcome::kRetry) {
    Job& job = q.jobs.front();
    ++job.attempts;
    const int64_t first = o.unreadable ? bundle_retry_delay_ms : kFirstBackoffMs;
    f.backoff_ms = std::min<int64_t>(kMaxBackoffMs, first << std::min(job.attempts - 1, 20));
    q.retry_at_ms = now_ms + f.backoff_ms;
    f.retry = true;
    f.job = job;
    return f;
  }
  q.retry_at_ms = 0;
  f.job = std::move(q.jobs.front());
  q.jobs.pop_front();
  if (q.jobs.empty()) queues_.erase(key);
  return f;
}

std::optional<int64_t> ModelQueues::NextRetryAt(int64_t now_ms) const {
  std::optional<int64_t> at;
  for (const auto& [key, q] : queues_) {
    if (q.running || q.jobs.empty() || q.retry_at_ms <= now_ms) continue;
    if (!at || q.retry_at_ms < *at) at = q.retry_at_ms;
  }
  return at;
}

size_t ModelQueues::running() const {
  size_t n = 0;
  for (const auto& [key, q] : queues_) n += q.running ? 1 : 0;
  return n;
}

}  // namespace wd
