#include "core/bundle_formats.h"

#include <array>
#include <cctype>

#include "core/npy_source.h"
#include "core/npz_source.h"
#include "core/safetensors_source.h"

namespace wd {
namespace {

const std::array<BundleFormat, 3> kFormats = {{
    {.name = "npz",
     .extension = ".npz",
     .open = OpenNpzSource,
     .named_by_file = false,
     .fingerprint_tail = 65536,
     .keeps_descriptor = true,
     .index_suffix = "",
     .check_index = nullptr},
    {.name = "npy",
     .extension = ".npy",
     .open = OpenNpySource,
     .named_by_file = true,
     .fingerprint_tail = 4096,
     .keeps_descriptor = false,
     .index_suffix = "",
     .check_index = nullptr},
    {.name = "safetensors",
     .extension = ".safetensors",
     .open = OpenSafetensorsSource,
     .named_by_file = false,
     .fingerprint_tail = 4096,
     .keeps_descriptor = false,
     .index_suffix = ".safetensors.index.json",
     .check_index = CheckSafetensorsIndex},
}};

}  // namespace

const BundleFormat* BundleFormatOf(std::string_view file_name) {
  for (const BundleFormat& f : kFormats) {
    if (file_name.ends_with(f.extension)) return &f;
  }
  return nullptr;
}

const BundleFormat* IndexFormatOf(std::string_view file_name) {
  for (const BundleFormat& f : kFormats) {
    if (!f.index_suffix.empty() && file_name.ends_with(f.index_suffix)) return &f;
  }
  return nullptr;
}

bool HasBundleExtensionInOtherCase(std::string_view file_name) {
  std::string lower(file_name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return !IsBundleFileName(file_name) && IsBundleFileName(lower);
}

std::string BundleStem(std::string_view file_name) {
  std::string stem(file_name);
  for (const BundleFormat& f : kFormats) {
    if (stem.size() > f.extension.size() && stem.ends_with(f.extension)) {
      stem.resize(stem.size() - f.extension.size());
    }
  }
  return stem;
}

std::string BundleExtensionList() {
  std::string out;
  for (size_t i = 0; i < kFormats.size(); ++i) {
    if (i > 0) out += i + 1 == kFormats.size() ? " or " : ", ";
    out += kFormats[i].extension;
  }
  return out;
}

std::string BundleFileKinds() { return "a " + BundleExtensionList() + " file"; }

}  // namespace wd
