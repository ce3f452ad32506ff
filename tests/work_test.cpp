// RunOnWorker and CatchInternal: whatever a worker job throws reaches the
// loop as a kInternal Status naming the job, and the loop closes cleanly.
#include "daemon/work.h"

#include <doctest/doctest.h>

#include <new>
#include <stdexcept>
#include <string>

#include "core/status.h"

namespace wd {
namespace {

// Runs `work` through RunOnWorker on a fresh loop; returns what `done` got.
Status RunOne(std::function<void()> work) {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  Status got = Status::Bundle("done was never called");
  RunOnWorker(&loop, "publishing", "/d/.weightdrop/processing/1/bomb.npz", std::move(work),
              [&got](const Status& fault) { got = fault; });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  return got;
}

TEST_CASE("a worker job's exception reaches done as an internal error naming the bundle") {
  struct Row {
    const char* what;
    std::function<void()> work;
    const char* message;  // "" = ok
  };
  const std::string prefix =
      "internal error while publishing /d/.weightdrop/processing/1/bomb.npz: ";
  const Row rows[] = {
      {"returns", [] {}, ""},
      {"std::bad_alloc", [] { throw std::bad_alloc(); }, "std::bad_alloc"},
      {"std::exception", [] { throw std::runtime_error("invariant broken"); }, "invariant broken"},
      {"anything else", [] { throw 42; }, "unknown exception"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.what);
    const Status got = RunOne(r.work);
    if (*r.message == '\0') {
      CHECK(got.ok());
    } else {
      CHECK(got.kind() == ErrorKind::kInternal);
      CHECK(got.message() == prefix + r.message);
    }
  }
}

TEST_CASE("an exception thrown by done is contained and the loop still closes") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  int after = 0;
  RunOnWorker(
      &loop, "scanning", "/d", [] {}, [](const Status&) { throw std::bad_alloc(); });
  RunOnWorker(
      &loop, "scanning", "/e", [] {}, [&after](const Status&) { ++after; });
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(after == 1);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("CatchInternal passes a Status through and turns a throw into kInternal") {
  CHECK(CatchInternal("inspecting", "b.npz", [] { return Status::Bundle("bad"); }).message() ==
        "bad");
  const Status s = CatchInternal("inspecting", "b.npz",
                                 []() -> Status { throw std::length_error("vector::reserve"); });
  CHECK(s.kind() == ErrorKind::kInternal);
  CHECK(s.message() == "internal error while inspecting b.npz: vector::reserve");
}

}  // namespace
}  // namespace wd
