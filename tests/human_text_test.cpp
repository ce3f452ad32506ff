#include "daemon/human_text.h"

#include <doctest/doctest.h>

#include <cmath>
#include <string>

namespace wd {
namespace {

TEST_CASE("sizes, rates and durations read in the largest unit they reach") {
  struct Row {
    std::string got, want;
  };
  const Row rows[] = {
      {HumanBytes(0), "0 B"},
      {HumanBytes(1023), "1023 B"},
      {HumanBytes(1024), "1.0 KiB"},
      {HumanBytes(1536), "1.5 KiB"},
      {HumanBytes(386ull << 20), "386.0 MiB"},
      {HumanBytes(1073741824), "1.0 GiB"},
      {HumanRate(900), "900 B/s"},
      {HumanRate(12.5 * 1048576), "12.5 MiB/s"},
      {HumanRate(250 * 1048576.0), "250 MiB/s"},
      {HumanRate(-1), "0 B/s"},
      {HumanRate(NAN), "0 B/s"},
      {HumanDuration(0.012), "12 ms"},
      {HumanDuration(4.1), "4.1 s"},
      {HumanDuration(59.99), "1 min 0 s"},
      {HumanDuration(125), "2 min 5 s"},
      {HumanDuration(3599.7), "1 h 0 min"},
      {HumanDuration(3720), "1 h 2 min"},
      {HumanDuration(-3), "0 ms"},
  };
  for (const Row& r : rows) CHECK(r.got == r.want);
}

TEST_CASE("a count takes the noun's singular only for one") {
  CHECK(Counted(0, "watch", "watches") == "0 watches");
  CHECK(Counted(1, "watch", "watches") == "1 watch");
  CHECK(Counted(2, "shard", "shards") == "2 shards");
}

}  // namespace
}  // namespace wd
