#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "daemon/drop_folder.h"
#include "tests/test_util.h"

namespace wd {
namespace {

namespace fs = std::filesystem;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_CASE("archive retention keeps the newest N, or what is younger than the age") {
  test::TempDir d;
  const std::string drop = d.path();
  const std::string failed = drop + "/.weightdrop/failed";
  fs::create_directories(failed);
  for (const char* name : {"a.npz", "b.npz", "c"}) {
    if (std::string(name) == "c") {
      fs::create_directories(failed + "/c/sub");
      test::WriteFile(failed + "/c/sub/w.npy", "x");
    } else {
      test::WriteFile(failed + "/" + name, "x");
    }
    test::WriteFile(failed + "/" + name + ".error.txt", "why");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct ctimes
  }
  test::WriteFile(failed + "/orphan.error.txt", "why");  // its bundle was removed by hand

  // Newest 2: orphan.error.txt and c stay; b.npz and a.npz go with their error files.
  auto r =
      PruneArchive(drop, "failed", ArchiveRetention{.max_age = Millis(0), .max_count = 2}, NowMs());
  REQUIRE(r.ok());
  CHECK(*r == std::vector<std::string>{"b.npz", "a.npz"});
  CHECK_FALSE(fs::exists(failed + "/a.npz"));
  CHECK_FALSE(fs::exists(failed + "/a.npz.error.txt"));
  CHECK(fs::exists(failed + "/c/sub/w.npy"));
  CHECK(fs::exists(failed + "/c.error.txt"));

  // Nothing is older than a day now; everything is two days from now.
  auto young = PruneArchive(drop, "failed", ArchiveRetention{}, NowMs());
  REQUIRE(young.ok());
  CHECK(young->empty());
  auto later = PruneArchive(drop, "failed", ArchiveRetention{.max_age = Millis(86400000)},
                            NowMs() + 2 * 86400000LL);
  REQUIRE(later.ok());
  CHECK(later->size() == 2);
  CHECK(fs::is_empty(failed));

  // "forever" (no limit) removes nothing; a missing archive is an error.
  CHECK(PruneArchive(drop, "done", ArchiveRetention{.max_age = Millis(0), .max_count = 0}, 0)
            ->empty());
  CHECK_FALSE(PruneArchive(drop, "done", ArchiveRetention{}, NowMs()).ok());
}

}  // namespace
}  // namespace wd
