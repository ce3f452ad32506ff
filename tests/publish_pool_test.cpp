// PublishPool on a real loop: publishes run on threads of their own, so a
// long one never holds up libuv's pool (scans, claims, status writes).
#include "daemon/publish_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

namespace wd {
namespace {

TEST_CASE("libuv's pool is free while every publish thread is busy") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::vector<std::string> order;
  {
    PublishPool pool(&loop);
    pool.Grow(2);
    // Two "publishes" that hold their threads until the scan is done.
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    int finished = 0;
    for (int i = 0; i < 2; ++i) {
      pool.Submit(
          "publishing", "big" + std::to_string(i), [released] { released.wait(); },
          [&](const Status& fault) {
            CHECK(fault.ok());
            order.push_back("publish");
            if (++finished == 2) pool.Close();
          });
    }
    // libuv's default pool has 4 threads; 4 scans finish while both
    // publish threads are still blocked (before the fix, publishes shared
    // that pool and could take all of it).
    int scans = 0;
    for (int i = 0; i < 4; ++i) {
      RunOnWorker(
          &loop, "scanning", "/d", [] {},
          [&](const Status&) {
            order.push_back("scan");
            if (++scans == 4) release.set_value();
          });
    }
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(order == std::vector<std::string>{"scan", "scan", "scan", "scan", "publish", "publish"});
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a publish task that throws reaches done as an internal error; the loop closes") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  Status got = Status::Ok();
  int calls = 0;
  {
    PublishPool pool(&loop);
    pool.Submit(
        "publishing", "/d/.weightdrop/processing/1/m.npy",
        [] { throw std::runtime_error("invariant broken"); },
        [&](const Status& fault) {
          got = fault;
          ++calls;
          pool.Close();
        });
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  CHECK(calls == 1);
  CHECK(got.kind() == ErrorKind::kInternal);
  CHECK(got.message() ==
        "internal error while publishing /d/.weightdrop/processing/1/m.npy: invariant broken");
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("a pool destroyed without Close still lets the loop close") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    PublishPool pool(&loop);
    pool.Grow(3);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace
}  // namespace wd
