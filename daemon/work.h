// RunOnWorker: libuv's threadpool with C++ callables. `work` runs on a worker
// thread, `done` back on the loop thread. No exception crosses into libuv:
// both are called inside try blocks that log and swallow.
#pragma once

#include <uv.h>

#include <functional>

namespace wd {

// REQUIRES: called on the loop thread.
void RunOnWorker(uv_loop_t* loop, std::function<void()> work, std::function<void()> done);

}  // namespace wd
