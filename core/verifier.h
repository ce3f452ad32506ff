// Verifier: checks a published version against its own records — every
// shard present with the recorded size and sha256, group sizes that match
// the manifest's weights, pointers consistent — and optionally that the
// shards are exactly what a given bundle encodes to. Also warns about shard
// layouts tfjs-core decodes wrongly, in folders written by any tool.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace wd {

struct VerifyReport {
  std::string version_dir;
  size_t shards_checked = 0;
  std::vector<std::string> problems;  // the version is not what it should be
  std::vector<std::string> warnings;  // it is, but a client may still trip
};

// `target` is S/M (the version `current` names) or S/M/V. `against`, if not
// empty, is a bundle to re-encode with the recorded settings and compare.
// Errors (not problems) are for targets that cannot be read at all.
Result<VerifyReport> Verify(const std::string& target, const std::string& against);

}  // namespace wd
