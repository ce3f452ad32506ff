// The .npy reader (docs/formats.md, ".npy header"): one weight per file,
// named by its path minus .npy.
#pragma once

#include "core/source_file.h"

namespace wd {

Result<IndexedFile> OpenNpySource(int fd, const SourceLocation& loc);

// For readers of .npy data inside other files (.npz members):
// The weight a .npy header describes.
WeightEntry NpyWeight(std::string name, std::string where, const NpyHeader& h);
// That a file or member (`what`: "file" or "member") of `actual` bytes holds
// exactly the header and the data it declares. A short file is kIncomplete
// (it may still be growing); a short member is kBundle.
Status CheckNpyDataSize(const NpyHeader& h, uint64_t actual, const std::string& where,
                        const char* what);

}  // namespace wd
