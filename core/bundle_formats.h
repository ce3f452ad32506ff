// The input formats: which files are bundle files and which reader indexes
// each (docs/formats.md, "Bundle"). The one rule the CLI, the daemon, the
// planner, the digest and the model-name templates use. A new input format
// is a reader (core/source_file.h) and one row in the table in
// bundle_formats.cpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/source_file.h"

namespace wd {

struct BundleFormat {
  std::string_view name;       // "safetensors", for messages
  std::string_view extension;  // ".safetensors": exact and lower case
  OpenSourceFn open;
  // A bundle that is one file of this format is digested under its file
  // name, because that name is its weight's name (.npy).
  bool named_by_file = false;
  // Bytes at the end of a file the bundle fingerprint samples (a .npz keeps
  // its central directory there).
  uint64_t fingerprint_tail = 4096;
  // An open file keeps a descriptor for as long as its bundle is open (a
  // .npz: libzip holds the archive); the other formats reopen per read.
  bool keeps_descriptor = false;
  // A file that describes the format's files beside it in a folder (a
  // sharded checkpoint's index), or "" for none; `check_index` checks it
  // against the weights those files hold.
  std::string_view index_suffix;
  Status (*check_index)(int fd, const SourceLocation& index,
                        const std::vector<const WeightEntry*>& beside,
                        const std::vector<std::string>& files_beside) = nullptr;
};

// The format of a file, by its exact, lower-case extension ("m.npz"), or
// nullptr ("M.NPZ", "notes.txt").
const BundleFormat* BundleFormatOf(std::string_view file_name);
inline bool IsBundleFileName(std::string_view file_name) {
  return BundleFormatOf(file_name) != nullptr;
}
// The format whose index file this is ("model.safetensors.index.json"), or
// nullptr.
const BundleFormat* IndexFormatOf(std::string_view file_name);
// A bundle extension in another case ("UP.NPZ"), for "the extension must be
// lower case" messages.
bool HasBundleExtensionInOtherCase(std::string_view file_name);
// The name without its bundle extension, for default model names and the
// {stem} of model templates: "m.npz" -> "m". Nothing is left unnamed: ".npz"
// stays ".npz". The extensions are stripped in table order (.npz, .npy,
// .safetensors), as weightdrop always did ("m.npy.npz" -> "m").
std::string BundleStem(std::string_view file_name);
// ".npz, .npy or .safetensors": for messages and help.
std::string BundleExtensionList();
// "a .npz, .npy or .safetensors file": for messages.
std::string BundleFileKinds();

}  // namespace wd
