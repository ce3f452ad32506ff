// OpenVersionStore: the store a serve target names — s3://bucket/prefix is
// an S3Store, anything else a local serve folder.
#pragma once

#include <memory>
#include <string>

#include "core/file_system.h"
#include "core/s3_store.h"
#include "core/version_store.h"

namespace wd {

Result<std::unique_ptr<VersionStore>> OpenVersionStore(const std::string& target, FileSystem& fs,
                                                       const S3StoreOptions& s3);

}  // namespace wd
