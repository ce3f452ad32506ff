// The safetensors reader (docs/formats.md, "safetensors"): an 8-byte
// little-endian header length N, N bytes of JSON naming each tensor's dtype,
// shape and data offsets, then the data. Parsing is strict: every rule of
// the format is checked and a violation names the file, the tensor and the
// problem. A sharded checkpoint's index (model.safetensors.index.json) is
// checked against the files beside it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/source_file.h"

namespace wd {

// Largest header we read. The format allows 100 MB; 16 MiB is ~150,000
// tensors, and a header is held in memory while it is parsed.
inline constexpr uint64_t kMaxSafetensorsHeader = 16u << 20;
// Largest index file we read.
inline constexpr uint64_t kMaxSafetensorsIndex = 16u << 20;

Result<IndexedFile> OpenSafetensorsSource(int fd, const SourceLocation& loc);

// The index at `index` (open on `fd`, not taken) against the safetensors
// files beside it (`files_beside`, by name) and their weights: every tensor
// it maps is in the file it names, every file it names is there, and every
// tensor those files hold is listed.
Status CheckSafetensorsIndex(int fd, const SourceLocation& index,
                             const std::vector<const WeightEntry*>& beside,
                             const std::vector<std::string>& files_beside);

// The header JSON parsed strictly: valid UTF-8 JSON, no key twice in one
// object (the error names it). Exposed for tests and fuzzing.
Result<nlohmann::json> ParseStrictJson(const std::string& text, const std::string& where);

}  // namespace wd
