// S3Store: a VersionStore in an S3 bucket under a prefix (docs/operations.md,
// "Object storage"). The layout mirrors a serve folder:
//
//   prefix/M/<v>/group1-shard1of2.bin ...   the shards (immutable)
//   prefix/M/<v>/weights_manifest.json       plain shard names
//   prefix/M/<v>/model.json                  when the bundle had one
//   prefix/M/<v>/publish.json                provenance; written last: the
//                                            version is complete once it exists
//   prefix/M/<v>/.claim                      who claimed number v, and when
//   prefix/M/model.json, weights_manifest.json, current
//                                            the pointers, version-qualified,
//                                            written after every object of the
//                                            version was acknowledged
//
// Version numbers are claimed with a conditional create of the .claim
// object (If-None-Match: *), so two writers never share one. Each pointer is
// replaced with a compare-and-swap on its ETag (If-Match) and only ever
// moves to a newer version (a rollback excepted), so two writers racing on
// one model converge on the newer version. An interrupted publish leaves an
// incomplete version no pointer names: the next publish of the model on the
// same host removes it once its writer is gone (any host's after an hour),
// or makes it current when it is complete and holds the same bundle.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/s3_client.h"
#include "core/verifier.h"
#include "core/version_store.h"

namespace wd {

struct S3StoreOptions {
  S3Settings s3;
  // Cache-Control of every object of a version, and of the pointers.
  std::string version_cache_control = "public, max-age=31536000, immutable";
  std::string pointer_cache_control = "no-cache";
  // Objects uploaded at once per publish; each holds up to part_size bytes
  // (a shard, or a part of one), which bounds the memory of a publish.
  int parallel_uploads = 4;
  // A shard that grows past this is uploaded in parts of part_size.
  uint64_t multipart_threshold = 16ull << 20;
  uint64_t part_size = 8ull << 20;
  // Where clients fetch what is published, for hooks and logs: a CDN or
  // the bucket's public URL. Empty: the endpoint's URL of the prefix.
  std::string public_url;
};

// `url` is s3://bucket[/prefix]. Checks nothing over the network: the
// first request says whether the endpoint, bucket and credentials work.
Result<std::unique_ptr<VersionStore>> NewS3Store(const std::string& url,
                                                 const S3StoreOptions& options);

// Counters of an S3 store, for status and metrics; nullopt for other stores.
std::optional<S3Client::Stats> S3StoreStats(VersionStore& store);

// Verifies s3://bucket/prefix/M (the version `current` names) or
// s3://bucket/prefix/M/V: every shard's size and sha256 against
// publish.json (the bytes are read back, not trusted from ETags), the
// manifest's digest, and that the pointers name the version consistently.
Result<VerifyReport> VerifyS3(const std::string& target, const S3StoreOptions& options);

}  // namespace wd
