#include "daemon/publish_pool.h"

#include <spdlog/spdlog.h>

#include <exception>

namespace wd {

PublishPool::PublishPool(uv_loop_t* loop) : async_(new uv_async_t) {
  uv_async_init(loop, async_, [](uv_async_t* h) {
    if (h->data != nullptr) static_cast<PublishPool*>(h->data)->DeliverFinished();
  });
  async_->data = this;
}

PublishPool::~PublishPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  Close();
}

void PublishPool::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  if (async_ == nullptr) return;
  async_->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(async_),
           [](uv_handle_t* h) { delete reinterpret_cast<uv_async_t*>(h); });
  async_ = nullptr;
}

void PublishPool::Grow(int threads) {
  while (static_cast<int>(threads_.size()) < threads) {
    threads_.emplace_back([this] { ThreadMain(); });
  }
}

void PublishPool::Submit(const char* doing, std::string subject, std::function<void()> work,
                         WorkDone done) {
  if (threads_.empty()) Grow(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued_.push_back(
        Task{doing, std::move(subject), std::move(work), std::move(done), Status::Ok()});
  }
  cv_.notify_one();
}

// Runs on a pool thread.
void PublishPool::ThreadMain() {
  for (;;) {
    Task task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return quit_ || !queued_.empty(); });
      if (queued_.empty()) return;  // quitting, nothing left
      task = std::move(queued_.front());
      queued_.pop_front();
    }
    task.fault = CatchInternal(task.doing, task.subject, [&task] {
      if (task.work) task.work();
      return Status::Ok();
    });
    task.work = nullptr;  // free what it captured on this thread
    {
      std::lock_guard<std::mutex> lock(mu_);
      finished_.push_back(std::move(task));
      // Under the lock: Close() cannot free the handle in between.
      if (async_ != nullptr) uv_async_send(async_);
    }
  }
}

void PublishPool::DeliverFinished() {
  std::deque<Task> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done.swap(finished_);
  }
  for (Task& t : done) {
    try {
      if (t.done) t.done(t.fault);
    } catch (const std::exception& e) {
      spdlog::error("internal error on the loop thread after {} {}: {}", t.doing, t.subject,
                    e.what());
    } catch (...) {
      spdlog::error("internal error on the loop thread after {} {}", t.doing, t.subject);
    }
  }
}

}  // namespace wd
