// Which files are bundle files: the one rule that the CLI, the daemon, the
// planner, the digest and the model-name templates use (docs/formats.md,
// "Bundle"). A new input format adds its extension here and its reader
// where BundleFormatOf is switched on (core/bundle.cpp).
#pragma once

#include <string>
#include <string_view>

namespace wd {

enum class BundleFormat { kNone, kNpz, kNpy };

// By the exact, lower-case extension: "m.npz" is kNpz, "M.NPZ" is kNone.
BundleFormat BundleFormatOf(std::string_view file_name);
inline bool IsBundleFileName(std::string_view file_name) {
  return BundleFormatOf(file_name) != BundleFormat::kNone;
}
// A bundle extension in another case ("UP.NPZ"), for "the extension must be
// lower case" messages.
bool HasBundleExtensionInOtherCase(std::string_view file_name);
// The name without its bundle extension, for default model names and the
// {stem} of model templates: "m.npz" -> "m". Nothing is left unnamed: ".npz"
// stays ".npz". The extensions are stripped in the order .npz, .npy, as
// weightdrop always did ("m.npy.npz" -> "m").
std::string BundleStem(std::string_view file_name);

}  // namespace wd
