#include "core/open_store.h"

namespace wd {

Result<std::unique_ptr<VersionStore>> OpenVersionStore(const std::string& target, FileSystem& fs,
                                                       const S3StoreOptions& s3) {
  if (IsS3Url(target)) return NewS3Store(target, s3);
  return NewLocalStore(fs, target);
}

}  // namespace wd
