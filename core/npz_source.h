// The .npz reader (docs/formats.md, ".npz archive"): one weight per .npy
// member, named by the member minus .npy, in member order.
#pragma once

#include "core/source_file.h"

namespace wd {

Result<IndexedFile> OpenNpzSource(int fd, const SourceLocation& loc);

}  // namespace wd
