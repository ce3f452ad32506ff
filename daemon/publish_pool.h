// PublishPool: threads of the publishes' own, so a 2 GiB publish never makes
// a scan, a claim or a status write (libuv's pool) wait behind it. Tasks run
// in submission order on at most `threads` threads; each task's `done` runs
// on the loop thread, with a kInternal fault when the task threw, as
// RunOnWorker's does. How many publishes are given at once is the model
// queue's `max_parallel_publishes`.
#pragma once

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "daemon/work.h"

namespace wd {

class PublishPool {
 public:
  // REQUIRES: loop thread. Starts no thread yet.
  explicit PublishPool(uv_loop_t* loop);
  // Joins the threads (a task still running is waited for) and closes the
  // loop handle if Close() was not called.
  ~PublishPool();
  PublishPool(const PublishPool&) = delete;
  PublishPool& operator=(const PublishPool&) = delete;

  // REQUIRES: loop thread. Grows the pool to `threads`; it never shrinks (a
  // lower max_parallel_publishes is applied by the queue).
  void Grow(int threads);
  // REQUIRES: loop thread. `doing` must be a string literal.
  void Submit(const char* doing, std::string subject, std::function<void()> work, WorkDone done);
  // REQUIRES: loop thread. Releases the loop handle so the loop can end;
  // tasks finishing after it have their `done` dropped.
  void Close();

 private:
  struct Task {
    const char* doing = "";
    std::string subject;
    std::function<void()> work;
    WorkDone done;
    Status fault = Status::Ok();
  };
  void ThreadMain();
  void DeliverFinished();  // loop thread

  uv_async_t* async_;  // guarded by mu_ once threads run
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queued_;    // guarded by mu_
  std::deque<Task> finished_;  // guarded by mu_
  bool quit_ = false;          // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace wd
