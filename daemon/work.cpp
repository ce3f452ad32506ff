#include "daemon/work.h"

#include <spdlog/spdlog.h>

#include <exception>

namespace wd {
namespace {

struct WorkItem {
  uv_work_t req;
  std::function<void()> work;
  std::function<void()> done;
};

void Guarded(const std::function<void()>& fn, const char* where) {
  try {
    if (fn) fn();
  } catch (const std::exception& e) {
    spdlog::error("internal error in {}: {}", where, e.what());
  } catch (...) {
    spdlog::error("internal error in {}", where);
  }
}

}  // namespace

void RunOnWorker(uv_loop_t* loop, std::function<void()> work, std::function<void()> done) {
  auto* item = new WorkItem{uv_work_t{}, std::move(work), std::move(done)};
  item->req.data = item;
  const int rc = uv_queue_work(
      loop, &item->req,
      [](uv_work_t* req) { Guarded(static_cast<WorkItem*>(req->data)->work, "worker"); },
      [](uv_work_t* req, int) {
        auto* it = static_cast<WorkItem*>(req->data);
        Guarded(it->done, "completion");
        delete it;
      });
  if (rc != 0) {
    spdlog::error("cannot queue work: {}", uv_strerror(rc));
    delete item;
  }
}

}  // namespace wd
