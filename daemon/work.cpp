#include "daemon/work.h"

#include <spdlog/spdlog.h>

#include <exception>

namespace wd {
namespace {

struct WorkItem {
  uv_work_t req;
  const char* doing;
  std::string subject;
  std::function<void()> work;
  WorkDone done;
  Status fault;  // written by the worker, read by the loop after it
};

// Runs on a worker thread.
void Work(uv_work_t* req) {
  auto* it = static_cast<WorkItem*>(req->data);
  it->fault = CatchInternal(it->doing, it->subject, [it] {
    if (it->work) it->work();
    return Status::Ok();
  });
}

// Runs on the loop thread.
void Done(uv_work_t* req, int) {
  auto* it = static_cast<WorkItem*>(req->data);
  try {
    if (it->done) it->done(it->fault);
  } catch (const std::exception& e) {
    spdlog::error("internal error on the loop thread after {} {}: {}", it->doing, it->subject,
                  e.what());
  } catch (...) {
    spdlog::error("internal error on the loop thread after {} {}", it->doing, it->subject);
  }
  delete it;
}

}  // namespace

void RunOnWorker(uv_loop_t* loop, const char* doing, std::string subject,
                 std::function<void()> work, WorkDone done) {
  auto* item = new WorkItem{uv_work_t{},     doing,           std::move(subject),
                            std::move(work), std::move(done), Status::Ok()};
  item->req.data = item;
  const int rc = uv_queue_work(loop, &item->req, Work, Done);
  if (rc != 0) {
    spdlog::error("cannot queue work ({} {}): {}", doing, item->subject, uv_strerror(rc));
    delete item;
  }
}

}  // namespace wd
