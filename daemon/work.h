// RunOnWorker: libuv's threadpool with C++ callables. `work` runs on a worker
// thread; whatever it throws (std::bad_alloc included) is caught there and
// reaches `done`, on the loop thread, as a kInternal Status of its own — never
// as a silently missing result. No exception crosses into libuv: `done` runs
// inside a try block that logs and swallows.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "core/status.h"

namespace wd {

// `fault` is Ok when `work` returned normally, else Status::Internal
// ("internal error while <doing> <subject>: <what()>").
using WorkDone = std::function<void(const Status& fault)>;

// REQUIRES: called on the loop thread. `doing` must be a string literal.
void RunOnWorker(uv_loop_t* loop, const char* doing, std::string subject,
                 std::function<void()> work, WorkDone done);

}  // namespace wd
