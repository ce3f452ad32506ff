// model.json: a tfjs model topology carried by a folder bundle. We never
// build a JSON tree of it: the text is checked (valid JSON, an object, bounded
// size and nesting) and published byte for byte, with only the value of the
// top-level "weightsManifest" key replaced (docs/formats.md, "model.json").
// tfjs takes a graph model's input and output order from the key order of
// "signature", so re-serializing (and so re-sorting) would change the model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace wd {

// Limits on a bundle's model.json. Real converter output nests < 40 deep and
// is at most a few MB; the limits only stop hostile input.
inline constexpr uint64_t kMaxModelJsonBytes = 64ull << 20;
inline constexpr int kMaxModelJsonDepth = 512;

// Checks `text` (named `where` in errors): valid UTF-8 JSON whose root is an
// object, nested at most kMaxModelJsonDepth deep, at most kMaxModelJsonBytes.
// Uses no recursion and no tree, so any input is checked in bounded stack.
Status CheckModelJson(std::string_view text, const std::string& where);

// Reads and checks the model.json at `path` (never following a symlink).
Result<std::string> ReadModelJson(const std::string& path);

// `original` (already checked) with the value of every top-level
// "weightsManifest" key replaced by `manifest_json`, or the key appended as
// the last member when there is none. Every other byte is kept.
Result<std::string> ModelJsonWithManifest(std::string_view original, std::string_view manifest_json,
                                          const std::string& where);

}  // namespace wd
